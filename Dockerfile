# docker build -t avatarclip . && docker run --gpus all -v $PWD/exp:/app/exp avatarclip \
#     avatarclip run --preset small --shape "a tall and skinny person" --appearance "a female soldier" --motion "arguing"
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
# A regular install, as users get it (presets and notebooks ship inside the package), plus <model-viewer> for the
# notebooks' offline 3D viewer. Notebooks: docker run -p 8888:8888 … jupyter lab --ip 0.0.0.0 --allow-root notebooks/
RUN pip install --no-cache-dir ".[test]" && npm install --no-audit --no-fund --loglevel=error
# Build anny's rig once at image build time (~50 s) so runs start fast.
RUN python -c "from avatarclip_core.body import get_body_model; get_body_model('anny')"
CMD ["avatarclip", "run", "--help"]
