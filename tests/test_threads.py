"""BLAS thread control covers every BLAS the curvature routes call (NumPy's and SciPy's)."""

import subprocess
import sys


def test_blas_threads_limits_numpy_and_scipy_blas():
    # a fresh process: the libraries are found on first use, before scipy.linalg is imported
    code = (
        "from esso_ref.threads import blas_threads\n"
        "from threadpoolctl import threadpool_info\n"
        "with blas_threads(1):\n"
        "    pass\n"
        "import scipy.linalg  # loaded after the first limit, as esso_ref's solver loads it\n"
        "with blas_threads(1):\n"
        "    libs = [i for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "    print(len({i['filepath'] for i in libs}), max(i['num_threads'] for i in libs))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"OPENBLAS_NUM_THREADS": "2", "PATH": ""}, timeout=120, check=True)
    count, most = map(int, out.stdout.split())
    assert count >= 1 and most == 1
