"""Safe loading: nothing a user supplies is unpickled, and a model's own code runs only on
request; help and early input errors do not load the ML stack."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import wagle
from wagle.models import load_pretrained

PACKAGE = Path(wagle.__file__).parent


def test_the_package_never_unpickles():
    """No torch.load, pickle or numpy allow_pickle anywhere in the package's code."""
    pattern = re.compile(r"torch\.load\(|\bimport pickle\b|pickle\.loads?\(|allow_pickle=True")
    hits = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert hits == []


def test_models_are_loaded_through_safetensors_without_remote_code():
    source = (PACKAGE / "models.py").read_text()
    assert "use_safetensors=True" in source
    calls = [
        path.relative_to(PACKAGE)
        for path in PACKAGE.rglob("*.py")
        if path.name != "models.py" and ".from_pretrained(" in path.read_text()
    ]
    assert calls == []  # every load goes through wagle.models


def test_a_directory_with_only_pickled_weights_is_not_loaded(tmp_path, tiny_model, tokenizer):
    """transformers would unpickle pytorch_model.bin; wagle.models refuses it."""
    import torch

    model = tiny_model()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(wagle.errors.WagleError, match="holds no safetensors weights"):
        load_pretrained(tmp_path)


LIGHT = [
    ["--help"],
    ["mask", "--help"],
    ["evaluate", "--help"],
    ["playground", "build", "--help"],
    ["demo", "--help"],
    ["unlearn", "--help"],
    ["attribute", "--help"],
    # user errors, found before a model is loaded
    ["evaluate", "--model", "/nonexistent/model", "--out", "/tmp/unused"],
    ["unlearn", "--model", "/nonexistent/model", "--forget", "f", "--retain", "r", "--out", "o"],
    ["unlearn", "--method", "magic"],
    ["unlearn", "--method", "ga", "--beta", "0.1"],  # an option of another method
    ["attribute", "--model", "/nonexistent/model", "--forget", "f", "--out", "m.safetensors"],
    ["attribute", "--method", "magic", "--model", "m", "--forget", "f", "--out", "o"],
]


@pytest.mark.parametrize("argv", LIGHT, ids=" ".join)
def test_help_does_not_import_torch_or_transformers(argv, tmp_path):
    code = (
        "import sys\nfrom wagle.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
    if "--help" not in argv:  # the user error was found, not skipped
        assert done.stderr.startswith("wagle: error: ")


def test_remote_code_runs_only_when_asked(tmp_path, tiny_model, tokenizer, monkeypatch):
    """Every loader call passes trust_remote_code=False and use_safetensors=True unless the
    caller (``--trust-remote-code``) asks for remote code."""
    import transformers

    tiny_model().save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    seen = []
    for auto in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        real = auto.from_pretrained

        def spy(*args, _real=real, **kwargs):
            seen.append({k: kwargs.get(k) for k in ("trust_remote_code", "use_safetensors")})
            return _real(*args, **kwargs)

        monkeypatch.setattr(auto, "from_pretrained", spy)
    load_pretrained(tmp_path, device=None)
    assert [s["trust_remote_code"] for s in seen] == [False, False]
    assert seen[1]["use_safetensors"] is True  # the model's weights
    seen.clear()
    load_pretrained(tmp_path, device=None, trust_remote_code=True)
    assert [s["trust_remote_code"] for s in seen] == [True, True]
