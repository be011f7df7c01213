# One image for the code server, webserver and daemon.
FROM python:3.11-slim
WORKDIR /opt/topic_pipeline
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY topic_pipeline ./topic_pipeline
# torch pinned first so the project's own install never changes it.
RUN pip install torch==2.13.0 && pip install -e .
COPY workspace.yaml ./
COPY deploy ./deploy
COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
ENV DAGSTER_HOME=/opt/dagster/dagster_home TOPIC_PIPELINE_DATA_DIR=/data
