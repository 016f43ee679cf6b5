"""Host code reaches into a tenant's tree only through ``hutch.runtime.safe_path``: no path is joined onto a
tenant's root, and no file call is made on one, anywhere else in ``runtime`` and ``templates``.

A tenant's tree is anything named like one (``merged``, ``rootfs``, ``upper``, ...), as a name or an
attribute (``root`` as a name only: ``self.root`` is a store's own directory), and any name assigned from a
join onto one. The few host-owned paths that share such a name are
listed in ``ALLOWED``, each with the reason it is not the tenant's.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "hutch"
SCANNED = ("runtime", "templates")
EXEMPT = {"runtime/safe_path.py"}
TENANT_NAMES = {"merged", "rootfs", "upper", "lower", "layer", "view", "root", "context"}
HOST_ATTRIBUTES = {"root"}
PATH_METHODS = {
    "open", "unlink", "write_text", "write_bytes", "read_text", "read_bytes", "chmod", "lchmod", "chown",
    "mkdir", "rmdir", "touch", "symlink_to", "hardlink_to", "rename", "replace", "is_file", "is_dir",
    "exists", "is_symlink", "iterdir", "glob", "rglob", "readlink", "stat", "lstat", "resolve",
}  # fmt: skip
FILE_FUNCTIONS = {
    "open", "os.open", "os.unlink", "os.remove", "os.rmdir", "os.chmod", "os.chown", "os.lchown", "os.walk",
    "os.listdir", "os.scandir", "os.readlink", "os.stat", "os.lstat", "os.rename", "os.replace",
    "os.symlink", "os.link", "os.mkdir", "os.makedirs", "os.path.join", "shutil.rmtree", "shutil.copy",
    "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.move", "shutil.chown",
}  # fmt: skip

# (file, function, the flagged code) -> why that path is the host's, not a tenant's.
ALLOWED = {
    ("runtime/container/oci.py", "_for_gvisor", "rootfs / 'tmp'"): (
        "a mount source string only; ContainerRuntime makes it a real directory through safe_path before "
        "each run, boot and restore, while the sandbox's processes are stopped"
    ),
    ("runtime/container/rootfs.py", "__init__", "layer / 'upper'"): (
        "``layer`` is the mount point of the sandbox's disk, the host's: ``upper`` is the top of the "
        "writable layer, which the sandbox sees as its root but cannot replace"
    ),
    ("runtime/container/rootfs.py", "__init__", "layer / 'work'"): (
        "overlayfs's work directory on the sandbox's disk"
    ),
    ("runtime/container/rootfs.py", "mount", "os.chown(self.upper, self.owner, self.owner)"): (
        "the writable layer's top directory itself, made by the host (or copied as a directory by "
        "copy_tree) on the sandbox's disk, which no sandbox reaches but through the overlay"
    ),
    ("runtime/container/start.py", "make_root", "overlay.upper.mkdir()"): (
        "the writable layer's top directory, made by the host on the sandbox's new, empty disk before any "
        "process of the sandbox exists, for the files of a sandbox moving in from another node"
    ),
    ("runtime/container/rootfs.py", "stored_upper", "view.mkdir()"): (
        "a new mount point in the sandbox's own directory (the host's), for a view of its writable layer"
    ),
    ("runtime/container/rootfs.py", "stored_upper", "view.rmdir()"): "the same mount point, unmounted",
    ("templates/builder.py", "_flatten", "view.mkdir()"): (
        "a new mount point the builder makes beside its partial layer, in the host's layer store"
    ),
    ("templates/builder.py", "_flatten", "view.rmdir()"): "the same mount point, unmounted",
}


@dataclass(frozen=True)
class Finding:
    file: str
    function: str
    code: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}: {self.code}"


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and node.attr not in HOST_ATTRIBUTES:
        return node.attr
    return None


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


class _Scanner(ast.NodeVisitor):
    def __init__(self, file: str) -> None:
        self.file = file
        self.function = "<module>"
        self.tainted: set[str] = set()
        self.findings: list[Finding] = []

    def _tenant(self, node: ast.AST) -> bool:
        """Whether ``node`` is a tenant's tree, or a path joined onto one."""
        while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            node = node.left
        name = _name(node)
        return name is not None and (
            name in TENANT_NAMES or (isinstance(node, ast.Name) and name in self.tainted)
        )

    def _flag(self, node: ast.AST) -> None:
        self.findings.append(Finding(self.file, self.function, ast.unparse(node), node.lineno))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, outer_tainted = self.function, self.tainted
        self.function, self.tainted = node.name, set()
        self.generic_visit(node)
        self.function, self.tainted = outer, outer_tainted

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        if isinstance(node.value, ast.BinOp) and self._tenant(node.value):
            self.tainted |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Div) and self._tenant(node):
            self._flag(node)
            return  # one finding per join chain
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        for value, following in zip(node.values, node.values[1:], strict=False):
            joined = isinstance(following, ast.Constant) and str(following.value).startswith("/")
            if isinstance(value, ast.FormattedValue) and self._tenant(value.value) and joined:
                self._flag(node)
                return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        method = isinstance(function, ast.Attribute) and function.attr in PATH_METHODS
        if (method and self._tenant(function.value)) or (
            _dotted(function) in FILE_FUNCTIONS and node.args and self._tenant(node.args[0])
        ):
            self._flag(node)
        self.generic_visit(node)


def scan(source: Path) -> list[Finding]:
    findings = []
    for package in SCANNED:
        for path in sorted((source / package).rglob("*.py")):
            file = path.relative_to(source).as_posix()
            if file in EXEMPT:
                continue
            scanner = _Scanner(file)
            scanner.visit(ast.parse(path.read_text(), filename=file))
            findings += scanner.findings
    return findings


def _allowed(finding: Finding) -> bool:
    return (finding.file, finding.function, finding.code) in ALLOWED


def test_tenant_trees_are_reached_only_through_safe_path() -> None:
    unsafe = [str(finding) for finding in scan(SOURCE) if not _allowed(finding)]
    assert not unsafe, "paths into a tenant's tree outside safe_path:\n" + "\n".join(unsafe)


def test_every_allowed_path_is_still_there() -> None:
    found = {(f.file, f.function, f.code) for f in scan(SOURCE)}
    assert not set(ALLOWED) - found, "allowed paths no longer in the code: remove them from ALLOWED"


@pytest.mark.parametrize(
    ("code", "flagged"),
    [
        ('(merged / "etc" / "hosts").write_text("x")', True),
        ('target = rootfs / "etc"\nos.unlink(target)', True),
        ('shutil.copytree(src, f"{view}/dest")', True),
        ("cp(sandbox.overlay.upper, destination)", False),
        ('tree.write_file("etc/hosts", "x")', False),
        ('(self.directory / "sandbox.json").read_text()', False),
    ],
)
def test_the_scan_sees_raw_paths(code: str, flagged: bool) -> None:
    scanner = _Scanner("example.py")
    scanner.visit(ast.parse(code))
    assert bool(scanner.findings) is flagged
