//! The Dockerfile cannot be built here (no Docker engine), so its shell steps that depend on
//! the project's files are run as Docker would run them: the dependency stage's stub sources
//! must satisfy the manifest, and every folder the build stage copies must exist.

mod common;

use common::process;
use common::scratch::Scratch;
use std::path::Path;
use std::process::Command;

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
        .expect("Dockerfile")
}

/// The instructions of the first stage, continuation lines joined, comments dropped.
fn build_stage() -> Vec<String> {
    let text = dockerfile().replace("\\\n", " ");
    let mut stage = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("FROM ") && !stage.is_empty() {
            break;
        }
        if !line.is_empty() && !line.starts_with('#') {
            stage.push(line.to_string());
        }
    }
    stage
}

#[test]
fn the_dependency_stage_stubs_satisfy_the_manifest() {
    let stage = build_stage();
    let copy = stage
        .iter()
        .position(|l| l == "COPY Cargo.toml Cargo.lock ./")
        .expect("the stage copies the manifest first");
    let run_at = copy
        + stage[copy..]
            .iter()
            .position(|l| l.starts_with("RUN "))
            .expect("a RUN after copying the manifest");
    let run = &stage[run_at]["RUN ".len()..];
    // Docker's shell form runs the line with /bin/sh -c in a folder that holds only what the
    // stage copied so far: the manifest and the lock file.
    let dir = Scratch::new("dockerfile-deps");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(root.join(file), dir.join(file)).expect("copy manifest");
    }
    for line in &stage[copy + 1..run_at] {
        let parts: Vec<&str> = line
            .strip_prefix("COPY ")
            .unwrap_or_else(|| panic!("only COPY before the dependency RUN: {line}"))
            .split_whitespace()
            .collect();
        let [source, target] = parts[..] else {
            panic!("COPY SOURCE TARGET expected: {line}");
        };
        copy_tree(&root.join(source), &dir.join(target));
    }
    // The message names the failing step: the command line is the stage's RUN line.
    process::run(Command::new("sh").arg("-c").arg(run).current_dir(&*dir)).expect_success();
    // The stubs must be enough for cargo to accept the manifest's targets.
    process::run(
        Command::new(env!("CARGO"))
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--offline",
            ])
            .current_dir(&*dir),
    )
    .expect_success();
}

/// Copies a file or a folder, recursively.
fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create folder");
        for entry in std::fs::read_dir(from).expect("read folder") {
            let entry = entry.expect("folder entry");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).expect("copy file");
    }
}

#[test]
fn every_folder_the_build_copies_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut copied = 0;
    for line in build_stage() {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        let parts: Vec<&str> = args.split_whitespace().collect();
        for source in &parts[..parts.len() - 1] {
            assert!(
                root.join(source).exists(),
                "COPY {source}: not in the repository"
            );
            copied += 1;
        }
    }
    assert!(
        copied >= 6,
        "the build stage copies the sources ({copied} found)"
    );
}

/// deploy/compose.yaml cannot be run here either: check what ties it to the repository. The
/// build context holds the Dockerfile, the nginx file it mounts exists, every upstream server
/// of that file is a service of the compose file, and no two servers share a cache volume.
#[test]
fn the_compose_file_matches_the_repository_and_the_nginx_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = std::fs::read_to_string(root.join("deploy/compose.yaml")).expect("compose");
    let nginx = std::fs::read_to_string(root.join("deploy/nginx/twine.conf")).expect("nginx");
    let value_of = |key: &str| -> Vec<String> {
        compose
            .lines()
            .filter_map(|line| line.trim().strip_prefix(key))
            .map(|rest| rest.trim().to_string())
            .collect()
    };
    for context in value_of("context:") {
        let dockerfile = root.join("deploy").join(&context).join("Dockerfile");
        assert!(dockerfile.exists(), "{context}: no Dockerfile there");
    }
    let mounted: Vec<String> = value_of("- ./")
        .iter()
        .filter_map(|v| v.split(':').next().map(str::to_string))
        .collect();
    assert!(
        mounted.iter().any(|m| m == "nginx/twine.conf"),
        "{mounted:?}"
    );
    for file in &mounted {
        assert!(
            root.join("deploy").join(file).exists(),
            "{file} is mounted but missing"
        );
    }
    let services: Vec<&str> = compose
        .lines()
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.trim().split(':').next())
        .collect();
    let upstreams: Vec<&str> = nginx
        .lines()
        .filter_map(|line| line.trim().strip_prefix("server "))
        .filter(|rest| rest.contains(':'))
        .filter_map(|rest| rest.split(':').next())
        .collect();
    assert!(upstreams.len() >= 2, "{upstreams:?}");
    for upstream in &upstreams {
        assert!(
            services.contains(upstream),
            "{upstream} is not a service: {services:?}"
        );
    }
    let caches: Vec<String> = value_of("- cache-");
    let mut distinct = caches.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        upstreams.len(),
        "one cache volume per server: {caches:?}"
    );
}
