"""tinygrad_rad's kernels (installed as ``tinygrad_rad.kernels``).

* ``reference`` - plain NumPy versions, the ground truth every other kernel is tested against.
* ``cpu``       - the CPU backend: Numba ``njit`` kernels, matmul through NumPy's BLAS.
* ``cuda``      - the CUDA backend: Numba CUDA kernels (and CUDA C ``.cu`` files loaded with CuPy).

Each backend module exposes the same functions (``matmul``, ``conv2d_forward``, ...); ops pick one
with ``tinygrad_rad.device.backend(device)``.
"""
