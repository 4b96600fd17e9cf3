//! Where `serve`'s settings come from (flags over environment over the config file, as
//! docs/configuration.md promises), and `healthcheck`, which the Docker HEALTHCHECK runs.

mod common;

use common::process::{free_port, run, twine, ServeProcess};
use common::scratch::Scratch;

/// The handoff zoom a running server announces in its demo layer's TileJSON.
fn announced_handoff(server: &ServeProcess) -> u64 {
    let tilejson = server.get("/tiles/demo.json").json();
    tilejson["heatmap"]["handoffZoom"]
        .as_u64()
        .unwrap_or_else(|| panic!("no heatmap.handoffZoom in {tilejson}"))
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_config_file() {
    let dir = Scratch::new("settings-precedence");
    let config = dir.file("twine.toml", "handoff_zoom = 5\n");
    let config = config.to_str().expect("utf-8 path");
    let from_env = [("TWINE_HANDOFF_ZOOM", "6")];

    let default = ServeProcess::start(&[]);
    assert_eq!(announced_handoff(&default), 8, "the documented default");
    drop(default);

    let file = ServeProcess::start(&["--config", config]);
    assert_eq!(announced_handoff(&file), 5, "the config file sets it");
    drop(file);

    let env = ServeProcess::start_env(&["--config", config], &from_env);
    assert_eq!(announced_handoff(&env), 6, "the environment beats the file");
    drop(env);

    let flag = ServeProcess::start_env(&["--config", config, "--handoff-zoom", "7"], &from_env);
    assert_eq!(announced_handoff(&flag), 7, "the flag beats both");
}

#[test]
fn a_handoff_zoom_out_of_range_is_refused_whichever_way_it_comes() {
    let dir = Scratch::new("settings-handoff-range");
    let config = dir.file("twine.toml", "handoff_zoom = 40\n");
    let message = run(&mut twine(&[
        "serve",
        "--config",
        config.to_str().expect("utf-8 path"),
    ]))
    .expect_failure();
    assert!(message.contains("handoff_zoom = 40"), "{message}");
    assert!(message.contains("allowed 0..="), "{message}");

    let bind = format!("127.0.0.1:{}", free_port());
    for (args, env) in [
        (vec!["--handoff-zoom", "31"], None),
        (vec![], Some(("TWINE_HANDOFF_ZOOM", "31"))),
    ] {
        let mut cmd = twine(&[&["serve", "--bind", &bind], &args[..]].concat());
        if let Some((key, value)) = env {
            cmd.env(key, value);
        }
        let message = run(&mut cmd).expect_failure();
        assert!(message.contains("--handoff-zoom 31"), "{message}");
        assert!(message.contains("allowed 0..="), "{message}");
    }
}

#[test]
fn healthcheck_passes_only_when_health_answers_200() {
    let server = ServeProcess::start(&[]);
    let out = run(&mut twine(&[
        "healthcheck",
        "--url",
        &format!("{}/health", server.base),
    ]));
    assert!(out.success(), "{}", out.verdict().1);

    // Any other answer, no answer at all, and a URL it cannot use: non-zero, with the reason.
    let not_found = run(&mut twine(&[
        "healthcheck",
        "--url",
        &format!("{}/no-such-route", server.base),
    ]))
    .expect_failure();
    assert!(not_found.contains("404"), "{not_found}");

    let closed = format!("http://127.0.0.1:{}/health", free_port());
    let refused = run(&mut twine(&["healthcheck", "--url", &closed])).expect_failure();
    assert!(refused.contains("127.0.0.1"), "{refused}");

    let https = run(&mut twine(&[
        "healthcheck",
        "--url",
        "https://127.0.0.1/health",
    ]))
    .expect_failure();
    assert!(https.contains("http://"), "{https}");
}

#[test]
fn healthcheck_gives_up_on_a_server_that_accepts_but_never_answers() {
    // A listener that accepts and stays silent, as a wedged server would: the check must fail
    // on its own timeout rather than hang the container's HEALTHCHECK.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/health", listener.local_addr().expect("addr"));
    let (accepted_tx, accepted_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Held open, unanswered, until the test process ends.
        let connection = listener.accept();
        let _ = accepted_tx.send(connection.is_ok());
        std::thread::sleep(std::time::Duration::from_secs(600));
    });
    let message = run(&mut twine(&["healthcheck", "--url", &url])).expect_failure();
    assert!(message.contains("no answer within"), "{message}");
    assert_eq!(accepted_rx.try_recv(), Ok(true), "it never connected");
}
