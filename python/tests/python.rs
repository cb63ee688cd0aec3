//! Runs the Python package's tests (`python/tests`, pytest) against the module this `cargo
//! test` built: the cdylib beside this test binary is put in a package directory as
//! `weir/_weir.abi3.so` next to the package's Python sources, with the interpreter of
//! `WEIR_PYTHON` (default: the virtual environment `scripts/python-env` makes). A missing
//! interpreter, pyarrow or pytest fails the test, naming the script that installs them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("WEIR_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/weir/python-venv/bin/python")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_tree(&path, &to.join(entry.file_name()));
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "py" || e == "pyi" || e == "typed")
        {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn the_python_package_passes_its_tests() {
    let python = python();
    let check = Command::new(&python).args(["-c", "import pyarrow, pytest"]).status();
    assert!(
        check.is_ok_and(|s| s.success()),
        "{} cannot import pyarrow and pytest: run scripts/python-env (or set WEIR_PYTHON to an interpreter that has them)",
        python.display()
    );
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    let module = deps.join("lib_weir.so");
    assert!(module.exists(), "{} was not built", module.display());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let site = tempfile::tempdir().unwrap();
    copy_tree(&root.join("weir"), &site.path().join("weir"));
    std::fs::copy(&module, site.path().join("weir/_weir.abi3.so")).unwrap();
    let status = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(root.join("tests"))
        // From the package directory: `python -m` puts the working directory first on the
        // path, and the checkout's `python/weir` has no native module.
        .current_dir(site.path())
        .env("PYTHONPATH", site.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("WEIR_REPO", root.parent().unwrap())
        // `weir cluster` for the distributed tests: the binary this `cargo test` built.
        .env("WEIR_BIN", deps.parent().unwrap().join("weir"))
        .status()
        .unwrap();
    assert!(status.success(), "the Python tests failed (output above)");
}
