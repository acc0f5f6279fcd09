"""Instruction embeddings for official AHA-WAM checkpoints: UMT5 encoder outputs, computed once, offline.

The official model conditions on the UMT5-XXL encoder output of
    "A video recorded from a robot's point of view executing the following instruction: {task}"
tokenized to exactly 128 tokens (pad/truncate), with every position at or past the prompt's length set to
zero and no attention mask (the zero tokens are attended). The 5.7 B-parameter encoder never runs on the
robot: `aha-wam embed-instructions` runs `transformers.UMT5EncoderModel` + its tokenizer from LOCAL
directories once and writes a safetensors cache that the nodes read (`load_instruction_cache`):

    tensors   one [max_length, d_model] tensor per instruction, keyed by sha256 of the full prompt
    metadata  'aha_wam_instruction_cache' = JSON {template, max_length, dtype, encoder, tokenizer,
              instructions: {instruction: {key, prompt, tokens}}}

Text cleaning follows the official tokenizer wrapper (`clean='whitespace'`: HTML-unescape twice, collapse
whitespace); ftfy's mojibake repair is not applied (a no-op for ordinary instructions).
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:       # torch loads only when embeddings are computed or read: `aha-wam` builds its argument
    import torch        # parsers from this module's constants and must start without it

OFFICIAL_PROMPT = "A video recorded from a robot's point of view executing the following instruction: {task}"
DEFAULT_MAX_LENGTH = 128
CACHE_FORMAT = 'aha_wam_instruction_cache'


class TextEmbeddingError(ValueError):
    """Instruction embeddings that cannot be computed or read as asked; one line naming why."""


def clean_text(text: str) -> str:
    """The official 'whitespace' clean (without ftfy): HTML-unescape twice, strip, collapse whitespace."""
    return re.sub(r'\s+', ' ', html.unescape(html.unescape(text)).strip()).strip()


def prompt_of(instruction: str, template: str = OFFICIAL_PROMPT) -> str:
    if '{task}' not in template:
        raise TextEmbeddingError(f'prompt template must contain {{task}}, got {template!r}')
    return clean_text(template.format(task=instruction))


def prompt_key(prompt: str) -> str:
    return hashlib.sha256(prompt.encode('utf-8')).hexdigest()


def _tokenizer_dir(encoder_dir: Path, tokenizer: str | os.PathLike | None) -> Path:
    if tokenizer is not None:
        return Path(tokenizer)
    for candidate in (encoder_dir, encoder_dir.parent / 'tokenizer'):
        if any((candidate / name).is_file() for name in ('tokenizer.json', 'spiece.model', 'tokenizer_config.json')):
            return candidate
    raise TextEmbeddingError(f'no tokenizer in {encoder_dir} or {encoder_dir.parent / "tokenizer"}; pass --tokenizer')


def encode_prompts(encoder, tokenizer, prompts: list[str], max_length: int = DEFAULT_MAX_LENGTH,
                   batch_size: int = 8) -> tuple[torch.Tensor, list[int]]:
    """[N, max_length, d_model] UMT5 outputs with positions >= each prompt's token count zeroed, and the counts."""
    import torch
    outs, lengths = [], []
    device = next(encoder.parameters()).device
    for start in range(0, len(prompts), max(1, int(batch_size))):
        batch = prompts[start:start + batch_size]
        ids = tokenizer(batch, padding='max_length', truncation=True, max_length=max_length,
                        add_special_tokens=True, return_tensors='pt')
        mask = ids.attention_mask.to(device)
        with torch.no_grad():      # inference only; everything after derives from `hidden` without a graph
            hidden = encoder(input_ids=ids.input_ids.to(device), attention_mask=mask).last_hidden_state
        n = mask.gt(0).sum(dim=1)
        keep = torch.arange(max_length, device=device)[None, :] < n[:, None]
        outs.append(hidden * keep.unsqueeze(-1).to(hidden.dtype))         # official: emb[i, n_i:] = 0
        lengths += [int(v) for v in n]
    return torch.cat(outs), lengths


def load_umt5(encoder_dir: str | os.PathLike, tokenizer: str | os.PathLike | None = None,
              dtype: torch.dtype | None = None):
    """(UMT5EncoderModel, tokenizer) from local directories (never downloads); dtype default bfloat16."""
    import torch
    dtype = torch.bfloat16 if dtype is None else dtype
    try:
        from transformers import AutoTokenizer, UMT5EncoderModel
    except ImportError as exc:
        raise TextEmbeddingError(f'embed-instructions needs transformers (requirements/ml.txt): {exc}') from None
    enc = Path(encoder_dir)
    if not (enc / 'config.json').is_file():
        raise TextEmbeddingError(f'{enc}: no config.json (expected a local UMT5 encoder directory)')
    tok_dir = _tokenizer_dir(enc, tokenizer)
    try:
        tok = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        model = UMT5EncoderModel.from_pretrained(str(enc), local_files_only=True, dtype=dtype)
    except Exception as exc:   # transformers raises OSError/ValueError variants for bad directories
        raise TextEmbeddingError(f'cannot load UMT5 from {enc} / {tok_dir} ({type(exc).__name__}: {exc})') from None
    return model.eval(), tok, tok_dir


def embed_instructions(encoder_dir: str | os.PathLike, instructions: Iterable[str], out: str | os.PathLike, *,
                       tokenizer: str | os.PathLike | None = None, max_length: int = DEFAULT_MAX_LENGTH,
                       template: str = OFFICIAL_PROMPT, dtype: str = 'bfloat16', batch_size: int = 8) -> dict:
    """Embed instructions into the cache at `out` (created or extended). Returns a JSON-able summary."""
    import torch
    from safetensors.torch import save_file
    torch_dtype = {'bfloat16': torch.bfloat16, 'float32': torch.float32}.get(dtype)
    if torch_dtype is None:
        raise TextEmbeddingError(f"dtype must be 'bfloat16' or 'float32', got {dtype!r}")
    if int(max_length) <= 0:
        raise TextEmbeddingError(f'max_length must be positive, got {max_length}')
    wanted = list(dict.fromkeys(i.strip() for i in instructions if i.strip()))
    if not wanted:
        raise TextEmbeddingError('no instructions to embed')
    out = Path(out)
    tensors: dict[str, torch.Tensor] = {}
    index: dict = {}
    if out.exists():
        tensors, header = _read_cache(out)
        for name, want in (('template', template), ('max_length', int(max_length)), ('dtype', dtype),
                           ('encoder', str(Path(encoder_dir).resolve()))):
            if header.get(name) != want:
                raise TextEmbeddingError(f'{out}: cache has {name}={header.get(name)!r}, this run {want!r}; '
                                         'write a new cache')
        index = header['instructions']
    model, tok, tok_dir = load_umt5(encoder_dir, tokenizer, torch_dtype)
    todo = [i for i in wanted if i not in index]
    if todo:
        prompts = [prompt_of(i, template) for i in todo]
        emb, lengths = encode_prompts(model, tok, prompts, int(max_length), batch_size)
        for instruction, prompt, e, n in zip(todo, prompts, emb, lengths):
            key = prompt_key(prompt)
            tensors[key] = e.to(torch_dtype).cpu().contiguous()
            index[instruction] = {'key': key, 'prompt': prompt, 'tokens': n}
    header = {'template': template, 'max_length': int(max_length), 'dtype': dtype,
              'encoder': str(Path(encoder_dir).resolve()), 'tokenizer': str(Path(tok_dir).resolve()),
              'd_model': int(model.config.d_model), 'instructions': index}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + '.tmp')
    save_file(tensors, str(tmp), metadata={CACHE_FORMAT: json.dumps(header)})
    os.replace(tmp, out)
    return {'out': str(out), 'instructions': len(index), 'added': len(todo), 'max_length': int(max_length),
            'd_model': header['d_model'], 'dtype': dtype}


def _read_cache(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework='pt', device='cpu') as f:
            meta = f.metadata() or {}
            if CACHE_FORMAT not in meta:
                raise TextEmbeddingError(f'{path}: not an instruction cache (no {CACHE_FORMAT} metadata)')
            return {k: f.get_tensor(k) for k in f.keys()}, json.loads(meta[CACHE_FORMAT])
    except TextEmbeddingError:
        raise
    except Exception as exc:   # safetensors' own error types for bad files
        raise TextEmbeddingError(f'{path}: unreadable instruction cache ({type(exc).__name__}: {exc})') from None


def load_instruction_cache(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """{instruction: [max_length, d_model] tensor} from a cache written by `embed_instructions`."""
    tensors, header = _read_cache(Path(path))
    return {instruction: tensors[entry['key']] for instruction, entry in header['instructions'].items()}


def instruction_tokens(path: str | os.PathLike, instruction: str) -> torch.Tensor:
    """The cached embedding of one instruction; a one-line error listing what the cache holds otherwise."""
    cache = load_instruction_cache(path)
    if instruction not in cache:
        raise TextEmbeddingError(f'{path} has no embedding for {instruction!r}; it holds {sorted(cache)[:8]} '
                                 '(run aha-wam embed-instructions)')
    return cache[instruction]
