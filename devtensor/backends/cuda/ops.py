"""Placeholder: CUDA kernel registrations land with the kernels."""
