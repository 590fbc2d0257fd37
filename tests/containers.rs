//! The Dockerfiles against the source: each build stage copies every directory the binary
//! compiles in (`include_str!` assets, `sqlx::migrate!` migrations), so that an image build
//! cannot fail on a file left out of its context. (No Docker engine runs here to build them.)

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// Top-level directories named by `include_str!("…")` (relative to the file) and
/// `migrate!("./…")` (relative to the crate) anywhere under src/.
fn compiled_in_directories(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![root.join("src")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (marker, base) in [
                ("include_str!(\"", dir.clone()),
                ("migrate!(\"", root.to_path_buf()),
            ] {
                for part in text.split(marker).skip(1) {
                    let Some(relative) = part.split('"').next() else {
                        continue;
                    };
                    if let Some(top) = top_directory(root, &base.join(relative)) {
                        found.insert(top);
                    }
                }
            }
        }
    }
    found
}

/// The first component of `path` below `root`, when the path goes into a directory there.
fn top_directory(root: &Path, path: &Path) -> Option<String> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    let inside = normal.strip_prefix(root).ok()?;
    let mut parts = inside.components();
    let top = parts.next()?.as_os_str().to_str()?.to_string();
    parts.next().map(|_| top)
}

#[test]
fn each_dockerfile_copies_every_directory_the_binary_compiles_in() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let needed = compiled_in_directories(root);
    assert!(
        needed.contains("migrations") && needed.contains("console"),
        "{needed:?}"
    );
    for dockerfile in ["Dockerfile", "Dockerfile.worker"] {
        let text = std::fs::read_to_string(root.join(dockerfile)).unwrap();
        for dir in &needed {
            assert!(
                text.lines()
                    .any(|line| line.trim() == format!("COPY {dir} {dir}")),
                "{dockerfile} does not copy {dir}/, which the binary compiles in"
            );
        }
    }
}
