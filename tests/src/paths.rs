//! Where things are: the repository, the cargo target directory, the installed clients.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The `tests/` directory of the repository (this crate's manifest directory).
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    tests_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(tests_dir)
}

/// The clients' directory, `tests/clients`.
pub fn clients_dir() -> PathBuf {
    tests_dir().join("clients")
}

/// What `tests/setup` installs and builds, `tests/clients/.cache`.
pub fn cache_dir() -> PathBuf {
    clients_dir().join(".cache")
}

/// The cargo target directory this test binary was built into, derived from the running
/// executable: `<target>/debug/deps/<test>` (or `<target>/debug/<bin>`) gives `<target>`.
pub fn cargo_target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running test executable")?;
    let mut dir = exe.parent();
    while let Some(d) = dir {
        if d.file_name().is_some_and(|n| n == "deps") {
            dir = d.parent();
            continue;
        }
        // `d` is the profile directory (debug/release); its parent is the target directory.
        return d
            .parent()
            .map(Path::to_path_buf)
            .with_context(|| format!("{} has no parent directory", d.display()));
    }
    bail!(
        "cannot derive the cargo target directory from {}",
        exe.display()
    )
}

/// The profile directory (`<target>/debug`) holding the binaries built with this test.
pub fn cargo_profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running test executable")?;
    let parent = exe
        .parent()
        .with_context(|| format!("{} has no parent directory", exe.display()))?;
    if parent.file_name().is_some_and(|n| n == "deps") {
        return parent
            .parent()
            .map(Path::to_path_buf)
            .with_context(|| format!("{} has no parent directory", parent.display()));
    }
    Ok(parent.to_path_buf())
}

/// `path` if it exists, else an error telling the reader to run `tests/setup`.
pub fn installed(path: PathBuf, what: &str) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        bail!(
            "{what} is not installed ({} is missing): run `tests/setup` from the repository root",
            path.display()
        )
    }
}
