# Source on a GPU host that has torch and triton but not this project installed (no network):
# installs the wheels carried in .whl/ (lmdb, grpc health/reflection) into /tmp/site and puts
# them and the checkout on PYTHONPATH.  Usage: source bench/gpu_env.sh
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
fi
export PYTHONPATH="/tmp/site:$PWD/clients/python:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
python3 -c "import torch, triton, grpc, lmdb; print('torch', torch.__version__, 'triton', triton.__version__, 'grpc', grpc.__version__, torch.cuda.get_device_name(0))"
