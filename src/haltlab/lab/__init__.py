"""The lab: real Linux kernels under QEMU. Imports nothing from the model."""
