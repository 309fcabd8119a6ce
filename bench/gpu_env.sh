# Sourced by the GPU scripts: install carried wheels (.whl) into /tmp/site, point greenrt at the carried model
# cache (.gpu_cache) and print the machine and versions.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || return 1
export PYTHONPATH=/tmp/site:$PWD/src GREENRT_CACHE=${GREENRT_CACHE:-$PWD/.gpu_cache} HF_HUB_OFFLINE=1 YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, onnx, onnxruntime, onnx_ir, triton, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__, 'onnx', onnx.__version__, 'ort', onnxruntime.__version__, 'onnx_ir', onnx_ir.__version__)"
