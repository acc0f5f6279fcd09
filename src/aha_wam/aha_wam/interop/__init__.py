"""Interoperability with the official AHA-WAM release: checkpoint conversion (`official`), UMT5 instruction
embeddings (`text`) and the embodiment contract between a checkpoint's units and piper_ros units (`contract`).
ROS-free; heavy imports (diffusers, transformers) happen inside the functions that need them."""
