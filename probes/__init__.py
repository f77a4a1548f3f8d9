"""Code that runs *inside* each probed environment.

It imports only the standard library, torch, transformers and huggingface_hub (numpy and
safetensors for fixtures), so it works in every env without installing this project
there. It records raw facts per cell and never judges compatibility: that is `matrix/`'s job.
"""
