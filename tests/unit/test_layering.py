"""The layering of DESIGN §2, checked by import-linter through every chain of imports: the contracts
in pyproject.toml ([tool.importlinter]) exist as written there, and `lint-imports` keeps them all."""
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["name"]: c for c in config["contracts"]}


def _find(contracts: dict[str, dict], kind: str, key: str, *modules: str) -> dict:
    found = [c for c in contracts.values() if c["type"] == kind and set(modules) <= set(c[key])]
    assert found, (kind, modules)
    return found[0]


def test_the_layering_contracts_are_the_ones_design_names():
    contracts = _contracts()
    _find(contracts, "independence", "modules", "functions", "render_job")
    shared = _find(contracts, "forbidden", "source_modules", "shared")
    assert {"functions", "render_job", "infra", "tests"} <= set(shared["forbidden_modules"])
    pure = _find(contracts, "forbidden", "source_modules", "render_job.graph", "render_job.plan", "shared.spec",
                 "shared.states", "shared.timeline")
    assert {"subprocess", "socket", "requests", "urllib", "http", "sqlalchemy", "google", "av",
            "PIL"} <= set(pure["forbidden_modules"])
    service = _find(contracts, "forbidden", "source_modules", "shared.service")
    assert {"shared.adapters", "shared.repository"} <= set(service["forbidden_modules"])
    for contract in (shared, pure, service):  # a chain through our own modules counts
        assert contract.get("allow_indirect_imports", False) is False, contract["name"]


def test_lint_imports_keeps_every_contract():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    assert lint_imports.exists(), "import-linter is missing: pip install -r requirements-dev.txt"
    run = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " 0 broken." in run.stdout, run.stdout[-2000:]
