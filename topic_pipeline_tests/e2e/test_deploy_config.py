"""The deployment files, checked as far as possible without a Docker engine or a Kubernetes cluster.

Nothing here starts a container or talks to a cluster (neither exists on this machine): the compose
files are parsed by a strict Compose Specification parser (compose-spec, bindings of the compose_spec
crate) after the interpolation `docker compose --env-file .env.example` would do; their commands are
parsed by the very click commands they name; the Dagster and dagster-k8s files are validated against
the schemas of the installed dagster and dagster-k8s, and the Kubernetes Job of the embeddings step is
built by dagster-k8s's own job builder.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shlex
import sys
import tomllib
from pathlib import Path

import click
import dagster as dg
import pytest
import yaml
from compose_spec import PyCompose
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config

from deploy_files import (
    COMPOSE_FILE,
    COMPOSE_GPU_FILE,
    DEPLOY,
    ENV_EXAMPLE,
    REPO,
    load_compose,
    raw_compose,
    read_env_file,
    referenced_variables,
)
from topic_pipeline.storage.paths import DataPaths

SERVICES = {"postgres", "mlflow", "code-server", "webserver", "daemon"}
# Started only with `docker compose --profile celery` (deploy/celery/).
CELERY_SERVICES = {"rabbitmq", "redis", "worker"}
DAGSTER_ENV = {
    "DAGSTER_PG_HOST": "db",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "u",
    "DAGSTER_PG_PASSWORD": "p",
    "DAGSTER_PG_DB": "d",
    "DAGSTER_COMPUTE_LOGS_DIR": "/logs",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def dockerfile_workdir() -> str:
    (workdir,) = [
        line.split()[1] for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("WORKDIR ")
    ]
    return workdir


# --- docker-compose.yml ---------------------------------------------------------------------------


def test_compose_files_are_valid_compose_specification(compose) -> None:
    PyCompose.from_yaml(yaml.safe_dump(compose)).validate()
    gpu = PyCompose.from_yaml(yaml.safe_dump(load_compose(COMPOSE_GPU_FILE)))
    assert gpu.service_names() == ["code-server"]
    # The parser is strict: the misspelling of a key is an error, not an ignored extension.
    with pytest.raises(ValueError, match="healtcheck"):
        PyCompose.from_yaml(yaml.safe_dump({"services": {"x": {"image": "i", "healtcheck": {}}}}))


def test_every_compose_variable_is_documented_in_env_example() -> None:
    referenced = referenced_variables(raw_compose()) | referenced_variables(raw_compose(COMPOSE_GPU_FILE))
    documented = read_env_file()
    assert referenced - set(documented) == set(), "variables used by the compose files but missing from .env.example"
    assert set(documented) - referenced == set(), ".env.example documents variables no compose file uses"
    # Each variable stands in a paragraph that a comment explains.
    explained = False
    for line in ENV_EXAMPLE.read_text().splitlines():
        if not line.strip():
            explained = False
        elif line.startswith("#"):
            explained = True
        else:
            assert explained, f".env.example: '{line}' has no comment above it"


def test_pipeline_settings_passed_to_the_code_server_are_read_by_the_code(compose) -> None:
    from topic_pipeline.settings import Settings

    environment = compose["services"]["code-server"]["environment"]
    read = {Settings.env_name(name) for name in Settings.model_fields} | {"HF_HOME"}  # HF_HOME: read by huggingface_hub
    names = [name for name in environment if name.startswith(("TOPIC_PIPELINE_", "MLFLOW_", "HF_"))]
    assert len(names) > 15
    assert [name for name in names if name not in read] == []


def test_services_health_checks_and_start_order(compose) -> None:
    services = compose["services"]
    assert set(services) == SERVICES | CELERY_SERVICES
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in services[dependency]
    assert set(services["code-server"]["depends_on"]) == {"postgres", "mlflow"}
    assert set(services["webserver"]["depends_on"]) == set(services["daemon"]["depends_on"]) == {"code-server"}


def test_databases_of_dagster_mlflow_and_the_source_are_separate(compose) -> None:
    postgres = compose["services"]["postgres"]["environment"]
    databases = [postgres["POSTGRES_DB"], postgres["MLFLOW_DB"], postgres["SOURCE_DB"]]
    assert len(set(databases)) == 3
    assert compose["services"]["code-server"]["environment"]["DAGSTER_PG_DB"] == postgres["POSTGRES_DB"]
    assert compose["services"]["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"].endswith(
        f"/{postgres['MLFLOW_DB']}"
    )
    assert compose["services"]["code-server"]["environment"]["TOPIC_PIPELINE_DATABASE_URL"].endswith(
        f"/{postgres['SOURCE_DB']}"
    )
    # The init script and the schema it loads are the repository's files.
    mounted = {volume.split(":")[0] for volume in compose["services"]["postgres"]["volumes"]}
    assert {"./deploy/postgres/init-databases.sh", "./deploy/postgres/articles.sql"} <= mounted
    assert all((REPO / path).is_file() for path in mounted if path.startswith("./"))


def mounts(service: dict) -> dict[str, str]:
    """Container path -> named volume."""
    return {target: source for source, target, *_ in (volume.split(":") for volume in service.get("volumes", []))}


def test_shared_volumes_for_caches_artifacts_and_models(compose) -> None:
    services = compose["services"]
    code_server = services["code-server"]
    paths = DataPaths(code_server["environment"]["TOPIC_PIPELINE_DATA_DIR"])
    volumes = mounts(code_server)
    # Each cache and the exported models on a volume of its own, at the paths the pipeline uses.
    assert volumes[str(paths.root)] == "data"
    assert volumes[str(paths.embeddings)] == "embedding-cache"
    assert volumes[str(paths.reductions)] == "reduction-cache"
    assert volumes[str(paths.root / "models")] == "models"
    assert volumes[code_server["environment"]["HF_HOME"]] == "huggingface-cache"
    # MLflow writes artifacts where its command sends them; clients upload through it (--serve-artifacts).
    command = shlex.split(services["mlflow"]["command"])
    assert "--serve-artifacts" in command
    assert mounts(services["mlflow"])[command[command.index("--artifacts-destination") + 1]] == "mlflow-artifacts"
    # Steps write their logs in the code server; the webserver reads them from the same volume.
    logs = code_server["environment"]["DAGSTER_COMPUTE_LOGS_DIR"]
    assert mounts(code_server)[logs] == mounts(services["webserver"])[logs] == "compute-logs"
    declared = set(compose["volumes"])
    assert {
        volume for service in services.values() for volume in mounts(service).values() if not volume.startswith(".")
    } == declared


def test_gpu_reservation_is_an_optional_override_for_the_code_server(compose) -> None:
    assert "deploy" not in compose["services"]["code-server"]  # the default stack runs on any host
    (device,) = load_compose(COMPOSE_GPU_FILE)["services"]["code-server"]["deploy"]["resources"]["reservations"][
        "devices"
    ]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    assert (
        "docker-compose.gpu.yml" in COMPOSE_FILE.read_text()
        and "docker-compose.gpu.yml" in (REPO / "docs" / "deployment.md").read_text()
    )


def parse_command_line(argv: list[str]) -> click.Command:
    """The click command ``argv`` runs, with its options parsed: an unknown option or command fails."""
    executable = Path(sys.executable).with_name(argv[0])
    assert executable.exists(), f"{argv[0]} is not installed in the environment"
    (entry_point,) = {ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == argv[0]}
    command = entry_point.load()
    if not isinstance(command, click.Command):  # a main() wrapping the module's click group
        command = sys.modules[entry_point.module].cli
    arguments = list(argv[1:])
    while isinstance(command, click.Group):
        subcommand = command.get_command(click.Context(command), arguments[0])
        assert subcommand is not None, f"{' '.join(argv)}: no command '{arguments[0]}'"
        command, arguments = subcommand, arguments[1:]
    command.make_context(argv[0], arguments)
    return command


def test_commands_are_the_project_entry_points(compose) -> None:
    services = compose["services"]
    image_services = [name for name, service in services.items() if service.get("build")]
    assert set(image_services) == (SERVICES - {"postgres"}) | {"worker"}
    workdir = dockerfile_workdir()

    def as_in_repo(argument: str) -> str:
        """A path inside the image's project folder, as the same path in this checkout."""
        return str(REPO / Path(argument).relative_to(workdir)) if argument.startswith(workdir + "/") else argument

    for name in image_services:
        parse_command_line([as_in_repo(argument) for argument in shlex.split(services[name]["command"])])
        healthcheck = services[name]["healthcheck"]["test"]
        if healthcheck[0] == "CMD" and healthcheck[1] != "python":
            parse_command_line(healthcheck[1:])

    # The code server serves this project's code location on the port the workspace names.
    code_server = shlex.split(services["code-server"]["command"])
    module = code_server[code_server.index("-m") + 1]
    assert module == "topic_pipeline.definitions" and importlib.util.find_spec(module) is not None
    for name in ("webserver", "daemon"):
        command = shlex.split(services[name]["command"])
        workspace = Path(as_in_repo(command[command.index("-w") + 1]))
        assert workspace == DEPLOY / "workspace.yaml"
        (location,) = yaml.safe_load(workspace.read_text())["load_from"]
        assert location["grpc_server"]["host"] == "code-server"
        assert str(location["grpc_server"]["port"]) == code_server[code_server.index("-p") + 1]
        project = tomllib.loads((REPO / "pyproject.toml").read_text())
        assert location["grpc_server"]["location_name"] == project["tool"]["dg"]["project"]["code_location_name"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY deploy ./deploy" in dockerfile
    assert "COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml" in dockerfile


def test_celery_services_are_a_profile_that_leaves_the_default_stack_alone(compose) -> None:
    services = compose["services"]
    for name in SERVICES:
        assert "profiles" not in services[name], name
    for name in CELERY_SERVICES:
        assert services[name]["profiles"] == ["celery"], name
    assert "--profile celery" in COMPOSE_FILE.read_text()
    # The default services reach nothing of the profile.
    for name in SERVICES:
        assert not set(services[name].get("depends_on", {})) & CELERY_SERVICES, name


def test_celery_worker_service(compose) -> None:
    services = compose["services"]
    worker, code_server = services["worker"], services["code-server"]
    command = shlex.split(worker["command"])
    assert command[:3] == ["dagster-celery", "worker", "start"]
    assert command[command.index("-A") + 1] == "topic_pipeline.cluster.worker"
    assert importlib.util.find_spec("topic_pipeline.cluster.worker") is not None
    assert command[command.index("--") + 1 :] == ["--pool=solo"]
    assert set(worker["depends_on"]) >= {"postgres", "rabbitmq", "redis", "mlflow"}
    environment = worker["environment"]
    # The worker's instance is deploy/celery/dagster.yaml, mounted as $DAGSTER_HOME/dagster.yaml.
    binds = {target: source for source, target, *_ in (volume.split(":") for volume in worker["volumes"])}
    assert binds[f"{environment['DAGSTER_HOME']}/dagster.yaml"] == "./deploy/celery/dagster.yaml"
    wanted = {
        value["env"] for value in _env_references(yaml.safe_load((DEPLOY / "celery" / "dagster.yaml").read_text()))
    }
    assert wanted <= set(environment)
    assert environment["DAGSTER_CELERY_BROKER_URL"].split("@")[1].startswith("rabbitmq:5672/")
    assert environment["DAGSTER_CELERY_BACKEND_URL"].startswith("redis://redis:6379/")
    # The same shared data directory, caches, settings and step logs as the code server.
    assert mounts(code_server).items() <= mounts(worker).items()
    for name, value in code_server["environment"].items():
        if name != "DAGSTER_HOME":
            assert environment[name] == value, name
    assert "TOPIC_PIPELINE_SWEEP_RUNS" in environment
    # The broker's user is set from .env, not RabbitMQ's localhost-only guest.
    rabbitmq = services["rabbitmq"]["environment"]
    assert environment["DAGSTER_CELERY_BROKER_URL"].startswith(
        f"pyamqp://{rabbitmq['RABBITMQ_DEFAULT_USER']}:{rabbitmq['RABBITMQ_DEFAULT_PASS']}@"
    )
    assert "celery" in next(line for line in (REPO / "Dockerfile").read_text().splitlines() if "pip install -e" in line)


def test_workspace_yaml_loads_as_a_grpc_code_location() -> None:
    from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    (origin,) = location_origins_from_yaml_paths([str(DEPLOY / "workspace.yaml")])
    assert isinstance(origin, GrpcServerCodeLocationOrigin)
    assert (origin.host, origin.port, origin.location_name) == ("code-server", 4000, "topic_pipeline")


# --- Dagster instance files -----------------------------------------------------------------------


def instance_config(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """``path`` validated as DAGSTER_HOME/dagster.yaml against the installed dagster's instance schema."""
    for name, value in DAGSTER_ENV.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / path.parent.name
    home.mkdir()
    (home / "dagster.yaml").write_text(path.read_text())
    config, custom_class = dagster_instance_config(str(home))
    assert custom_class is None
    return config


def test_compose_instance_config(compose, tmp_path, monkeypatch) -> None:
    config = instance_config(DEPLOY / "dagster.yaml", tmp_path, monkeypatch)
    assert set(config["storage"]["postgres"]["postgres_db"]) == {
        "hostname",
        "port",
        "username",
        "password",
        "db_name",
        "scheme",
    }
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    # Every variable the instance reads is set for each Dagster service.
    wanted = {value["env"] for value in _env_references(yaml.safe_load((DEPLOY / "dagster.yaml").read_text()))}
    assert wanted == set(DAGSTER_ENV)
    for name in ("code-server", "webserver", "daemon"):
        assert wanted <= set(compose["services"][name]["environment"]), name


def test_every_instance_file_enables_run_monitoring(tmp_path, monkeypatch) -> None:
    # Runs a launcher started are watched by the daemon; topic_pipeline.defs.recovery covers only the runs
    # the command line executes in its own process (see its docstring).
    for path in (DEPLOY / "local" / "dagster.yaml", DEPLOY / "dagster.yaml", DEPLOY / "k8s" / "dagster.yaml"):
        config = instance_config(path, tmp_path, monkeypatch)
        assert config["run_monitoring"]["enabled"] is True, path
        assert config["run_monitoring"]["start_timeout_seconds"] > 0, path


def _env_references(node):
    if isinstance(node, dict):
        if set(node) == {"env"}:
            yield node
        for value in node.values():
            yield from _env_references(value)


# --- Kubernetes (dagster-k8s) ---------------------------------------------------------------------


@pytest.fixture
def kubeconfig(tmp_path) -> str:
    """A kubeconfig naming an unreachable API server: dagster-k8s reads it, nothing connects to it."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "test", "user": {"token": "unused"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            }
        )
    )
    return str(path)


def k8s_launcher(tmp_path, monkeypatch, kubeconfig):
    from dagster_k8s import K8sRunLauncher

    config = instance_config(DEPLOY / "k8s" / "dagster.yaml", tmp_path, monkeypatch)
    launcher_config = config["run_launcher"]["config"]
    assert config["run_launcher"]["module"] == "dagster_k8s" and config["run_launcher"]["class"] == "K8sRunLauncher"
    result = validate_config(K8sRunLauncher.config_type(), launcher_config)
    assert result.success, [error.message for error in result.errors]
    # In a pod it loads the in-cluster config; here the same settings with a kubeconfig instead.
    assert launcher_config.get("load_incluster_config", True) is True
    return K8sRunLauncher.from_config_value(
        None, {**result.value, "load_incluster_config": False, "kubeconfig_file": kubeconfig}
    )


def executor_config() -> dict:
    from dagster_k8s import k8s_job_executor

    raw = yaml.safe_load((DEPLOY / "k8s" / "executor.yaml").read_text())
    result = validate_config(k8s_job_executor.config_schema.config_type, raw)
    assert result.success, [error.message for error in result.errors]
    return result.value


def test_k8s_instance_and_executor_configs_validate(tmp_path, monkeypatch, kubeconfig) -> None:
    launcher = k8s_launcher(tmp_path, monkeypatch, kubeconfig)
    assert launcher.instance_config_map == "dagster-instance"
    assert {mount["mountPath"] for mount in launcher.volume_mounts} == {"/data"}
    config = executor_config()
    assert set(config["per_step_k8s_config"]) == {"embeddings", "grid_trials"}


def test_k8s_executor_is_selected_by_environment_and_names_real_steps(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("TOPIC_PIPELINE_EXECUTOR", "k8s")
    monkeypatch.setenv("TOPIC_PIPELINE_K8S_EXECUTOR_CONFIG", str(DEPLOY / "k8s" / "executor.yaml"))
    from topic_pipeline.definitions import build_executor, defs

    definitions = defs()
    for name in ("embeddings_job", "trials_job"):
        assert definitions.resolve_job_def(name).executor_def.name == "k8s", name
    # Jobs of light steps keep running in their run's pod.
    assert definitions.resolve_job_def("refresh_inputs_job").executor_def.name == "in_process"
    # In the run's pod by default (the command line's forked step applies to its own runs only).
    leaderboard = definitions.resolve_job_def("leaderboard_job")
    assert leaderboard.executor_def.name == "multi_or_in_process_executor"
    assert leaderboard.run_config_schema.config_type.fields["execution"].default_value == {"config": {"in_process": {}}}
    # per_step_k8s_config is keyed by op name: each key must be a step of the jobs it is meant for.
    op_names = {
        node.name for name in ("embeddings_job", "trials_job") for node in definitions.resolve_job_def(name).graph.nodes
    }
    assert set(executor_config()["per_step_k8s_config"]) <= op_names

    monkeypatch.setenv("TOPIC_PIPELINE_K8S_EXECUTOR_CONFIG", str(tmp_path / "absent.yaml"))
    with pytest.raises(Exception, match="TOPIC_PIPELINE_K8S_EXECUTOR_CONFIG"):
        build_executor()
    monkeypatch.setenv("TOPIC_PIPELINE_EXECUTOR", "docker")
    with pytest.raises(Exception, match="TOPIC_PIPELINE_EXECUTOR='docker': expected one of multiprocess, k8s"):
        build_executor()


def test_k8s_embeddings_step_job_requests_one_gpu(tmp_path, monkeypatch, kubeconfig) -> None:
    """The Kubernetes Job of the embeddings step, merged as the k8s_job_executor merges it (run launcher
    settings, then step_k8s_config, then the step's entry of per_step_k8s_config) and built by
    dagster-k8s's job builder; only submitting it to a cluster is left out."""
    from dagster_k8s import construct_dagster_k8s_job
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    launcher = k8s_launcher(tmp_path, monkeypatch, kubeconfig)
    config = executor_config()

    def step_job(step: str):
        context = K8sContainerContext.create_for_run(
            dg.DagsterRun(job_name="embeddings_job", run_id="r1"), launcher, include_run_tags=False
        )
        for layer in (config["step_k8s_config"], config["per_step_k8s_config"].get(step, {})):
            context = context.merge(K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(layer)))
        job_config = context.get_k8s_job_config("topic-pipeline:test", launcher)
        return construct_dagster_k8s_job(
            job_config,
            ["dagster", "api", "execute_step"],
            f"dagster-step-{step}",
            user_defined_k8s_config=context.run_k8s_config,
        )

    embeddings = step_job("embeddings")
    pod = embeddings.spec.template.spec
    (container,) = pod.containers
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert any(toleration.key == "nvidia.com/gpu" for toleration in pod.tolerations)
    assert pod.service_account_name == "topic-pipeline"
    assert {mount.mount_path for mount in container.volume_mounts} >= {"/data"}
    secret_env = {item.name: item.value_from.secret_key_ref.name for item in container.env if item.value_from}
    assert secret_env["DAGSTER_PG_PASSWORD"] == "dagster-postgresql-secret"
    # Other steps get no GPU; the trials step gets the engine's worker count matching its CPU request.
    (trials,) = step_job("grid_trials").spec.template.spec.containers
    assert "nvidia.com/gpu" not in (trials.resources.limits or {})
    assert {item.name: item.value for item in trials.env if item.value}[
        "TOPIC_PIPELINE_WORKERS"
    ] == trials.resources.requests["cpu"]
    (default,) = step_job("any_other_step").spec.template.spec.containers
    assert default.resources.requests == {"cpu": "1", "memory": "2Gi"}
