# One image for every service of docker-compose.yml but postgres: code server, webserver, daemon, mlflow.
FROM python:3.11-slim
WORKDIR /opt/topic_pipeline
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY topic_pipeline ./topic_pipeline
# torch pinned first so the project's own install never changes it (PyPI's Linux wheel includes CUDA, for
# GPU hosts). The k8s extra (dagster-k8s) serves the Kubernetes deployment (deploy/k8s/).
RUN pip install torch==2.13.0 && pip install -e ".[k8s,celery]"
# UMAP's and NNDescent's numba code compiled into the image once, not in each container (numba uses
# it where the CPU matches the build machine's and compiles afresh elsewhere).
RUN topic-pipeline compile
COPY deploy ./deploy
COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
ENV DAGSTER_HOME=/opt/dagster/dagster_home TOPIC_PIPELINE_DATA_DIR=/data
