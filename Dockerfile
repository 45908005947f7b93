# The registry server image: no torch, no triton (DESIGN.md §2).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY protos ./protos
COPY clients ./clients
COPY registry ./registry
COPY generator ./generator
RUN pip install --no-cache-dir .
VOLUME /data
EXPOSE 7600 9100
# Workers run elsewhere (on GPU hosts: `kreg worker --registry ...`); this image has no torch.
ENTRYPOINT ["kreg", "serve", "--data", "/data", "--listen", "0.0.0.0:7600", "--metrics-port", "9100", "--workers", "0"]
