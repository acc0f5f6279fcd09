"""The interop subcommands of `aha-wam` (registered in aha_wam.cli.COMMANDS): convert-official and
embed-instructions. Heavy imports (torch, transformers) happen inside the functions."""
from __future__ import annotations

import json
import sys


def cmd_convert_official(args) -> int:
    """Convert an official AHA-WAM checkpoint (.pt) + dataset_stats.json into a checkpoint directory."""
    import torch
    from aha_wam.checkpoint import CheckpointError
    from aha_wam.config import load_config
    from aha_wam.interop.official import ConversionError, convert_official
    try:
        config = load_config(args.config) if args.config else args.preset
        dtype = {'keep': None, 'bfloat16': torch.bfloat16, 'float32': torch.float32}[args.dtype]
        out = convert_official(args.checkpoint, args.stats, args.out, config, dtype=dtype, stats_key=args.stats_key,
                               overwrite=args.overwrite, vae_weights=args.vae)
    except (ConversionError, CheckpointError, ValueError, OSError) as exc:
        print(f'aha-wam convert-official: error: {exc}', file=sys.stderr)
        return 2
    from aha_wam.checkpoint import read_provenance
    prov = read_provenance(out)
    print(json.dumps({'out': str(out), 'num_parameters': prov['num_parameters'],
                      'source_sha256': prov['extra']['converted_from']['sha256'],
                      'weights_sha256': prov['weights_sha256']}))
    return 0


def _convert_arguments(p) -> None:
    from aha_wam.config import OFFICIAL_PRESETS
    p.add_argument('checkpoint', help='official checkpoint, e.g. robotwin_ahawam.pt (read with weights_only=True)')
    p.add_argument('out', help='checkpoint directory to write')
    p.add_argument('--stats', required=True, help="the checkpoint's dataset_stats.json (normaliser statistics)")
    p.add_argument('--preset', default='robotwin', choices=OFFICIAL_PRESETS,
                   help='official layout: robotwin (horizon 64, offset 0; robotwin_ahawam.pt), robotwin_offset, '
                        'ahawam_pretrained')
    p.add_argument('--config', default=None, help='a model config YAML instead of a preset (shapes must match)')
    p.add_argument('--dtype', default='keep', choices=('keep', 'bfloat16', 'float32'),
                   help="weights' dtype in the output (default: the checkpoint's)")
    p.add_argument('--stats-key', default=None, help="key inside dataset_stats.json (default: 'default')")
    p.add_argument('--vae', default=None,
                   help='local Wan2.2 VAE (diffusers dir or .safetensors) recorded as encoder.weights')
    p.add_argument('--overwrite', action='store_true', help='replace a non-empty output directory')


def cmd_embed_instructions(args) -> int:
    """UMT5 embeddings of instructions (official prompt template, 128 tokens, padding zeroed) into a cache."""
    from aha_wam.interop.text import TextEmbeddingError, embed_instructions
    instructions = list(args.instruction)
    if args.file:
        try:
            with open(args.file, encoding='utf-8') as f:
                instructions += [line.strip() for line in f if line.strip() and not line.startswith('#')]
        except OSError as exc:
            print(f'aha-wam embed-instructions: error: {exc}', file=sys.stderr)
            return 2
    if not instructions:
        print('aha-wam embed-instructions: error: no instructions (give them as arguments or with --file)',
              file=sys.stderr)
        return 2
    try:
        summary = embed_instructions(args.encoder, instructions, args.out, tokenizer=args.tokenizer,
                                     max_length=args.max_length, template=args.template, dtype=args.dtype,
                                     batch_size=args.batch_size)
    except (TextEmbeddingError, OSError, ValueError) as exc:
        print(f'aha-wam embed-instructions: error: {exc}', file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def _embed_arguments(p) -> None:
    from aha_wam.interop.text import DEFAULT_MAX_LENGTH, OFFICIAL_PROMPT
    p.add_argument('instruction', nargs='*', help='instructions (e.g. "lift the box"), one per argument')
    p.add_argument('--encoder', required=True,
                   help='local UMT5 encoder directory (transformers UMT5EncoderModel, e.g. umt5-xxl text_encoder/)')
    p.add_argument('--tokenizer', default=None, help='local tokenizer directory (default: the encoder directory, '
                                                     'or its ../tokenizer)')
    p.add_argument('--out', required=True, help='safetensors cache to write (updated in place when it exists)')
    p.add_argument('--file', default=None, help='a text file with one instruction per line')
    p.add_argument('--max-length', type=int, default=DEFAULT_MAX_LENGTH, help='tokens per instruction (official 128)')
    p.add_argument('--template', default=OFFICIAL_PROMPT,
                   help='prompt template with {task} (default: the official AHA-WAM prompt)')
    p.add_argument('--dtype', default='bfloat16', choices=('bfloat16', 'float32'),
                   help='dtype of the stored embeddings (official: bf16)')
    p.add_argument('--batch-size', type=int, default=8)


COMMANDS = {
    'convert-official': (cmd_convert_official, _convert_arguments),
    'embed-instructions': (cmd_embed_instructions, _embed_arguments),
}
