//! Periodic extensions (`phase = "periodic"`, `every`): `deliver --watch` sends each the
//! inventory of the repositories under `repos_root` on its interval, logs every run,
//! retries a failed one, and runs a missed one once when it starts.

use crate::harness::{ALLOW_ALL, Answer, Receiver, Sandbox, assert_valid, inventory_schema, quoted};
use std::time::{Duration, Instant};

fn periodic_http(name: &str, url: &str, every: &str) -> String {
    format!(
        "\n[[extension]]\nname = {}\ntype = \"http\"\nphase = \"periodic\"\nurl = {}\nevery = {}\ntimeout = \"2s\"\n",
        quoted(name),
        quoted(url),
        quoted(every)
    )
}

/// A server of two repositories, one pushed to.
fn server_of_two(extension: &str) -> (Sandbox, String) {
    let site = Sandbox::new();
    site.configure(&format!("[identity]\nenv = [\"PUSHGATE_USER\"]\n{ALLOW_ALL}{extension}"));
    let app = site.git_repo("team/app.git");
    site.git_repo("empty.git");
    let work = site.git_work("work");
    site.git(&work, &["push", "--quiet"]).arg(&app).arg("main").env("PUSHGATE_USER", "alice").ok();
    site.git(&work, &["tag", "v1"]).ok();
    site.git(&work, &["push", "--quiet"]).arg(&app).arg("v1").env("PUSHGATE_USER", "alice").ok();
    let head = site.git(&work, &["rev-parse", "HEAD"]).ok().trim().to_string();
    (site, head)
}

#[test]
fn a_periodic_extension_gets_the_inventory_on_its_interval_and_every_run_is_logged() {
    let receiver = Receiver::ok();
    let (site, head) = server_of_two(&periodic_http("sizes", &receiver.url("/inventory"), "1s"));
    let _watch = site.pushgate(&["deliver", "--watch"]).background();

    let first = receiver.next();
    let second = receiver.next();
    assert_eq!(first.header("X-Pushgate-Event"), "inventory");
    let doc = second.json();
    assert_valid(&inventory_schema(), &doc);
    assert_ne!(first.json()["id"], doc["id"], "each run is a new document");
    let repos = doc["repositories"].as_array().unwrap();
    let names: Vec<&str> = repos.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["empty", "team/app"], "named as rules and events name them");
    let app = &repos[1];
    assert_eq!(app["vcs"], "git");
    assert_eq!(app["branches"]["main"], head.as_str());
    assert_eq!(app["tags"]["v1"], head.as_str());
    assert!(app["size_bytes"].as_u64().unwrap() > 0);
    assert!(app["last_push"].is_string());
    assert_eq!(repos[0]["branches"], serde_json::json!({}));

    let log = site.pushgate(&["log", "--json"]).ok();
    let runs: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(runs.iter().any(|r| r["connector"] == "sizes" && r["outcome"] == "delivered"), "{log}");
}

#[test]
fn a_failed_run_is_retried_on_the_retry_schedule() {
    let receiver = Receiver::scripted([Answer::status(503)], Answer::ok());
    let (site, _) = server_of_two(&periodic_http("sizes", &receiver.url("/inventory"), "1h"));
    let _watch = site.pushgate(&["deliver", "--watch"]).background();
    let failed = receiver.next();
    let retried = Instant::now();
    let again = receiver.next();
    // The sandbox's retry schedule is 1s (+-20%); the interval is an hour.
    assert!(retried.elapsed() < Duration::from_secs(5), "{:?}", retried.elapsed());
    assert_eq!(failed.header("X-Pushgate-Event"), again.header("X-Pushgate-Event"));
    assert!(receiver.next_within(Duration::from_millis(1500)).is_none(), "then it waits for its interval");
    let log = site.pushgate(&["log"]).ok();
    let outcomes: Vec<&str> = log.lines().filter(|l| l.contains(" sizes ")).collect();
    assert_eq!(outcomes.len(), 2, "{log}");
    assert!(outcomes[0].contains(" retry ") && outcomes[1].contains(" delivered "), "{log}");
}

#[test]
fn a_run_missed_while_no_deliverer_ran_happens_once_when_one_starts() {
    let receiver = Receiver::ok();
    let (site, _) = server_of_two(&periodic_http("sizes", &receiver.url("/inventory"), "1h"));
    // Due a long time ago: many intervals were missed.
    let state = site.spool_dir().join("periodic");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("sizes.json"), r#"{"next_due": 1000, "attempts": 0}"#).unwrap();
    let watch = site.pushgate(&["deliver", "--watch"]).background();
    receiver.next();
    assert!(receiver.next_within(Duration::from_millis(1500)).is_none(), "once, not once per missed hour");
    drop(watch);
    // A disabled one does not run at all.
    let receiver = Receiver::ok();
    let (site, _) =
        server_of_two(&format!("{}enabled = false\n", periodic_http("sizes", &receiver.url("/inventory"), "1s")));
    let _watch = site.pushgate(&["deliver", "--watch"]).background();
    assert!(receiver.next_within(Duration::from_millis(1500)).is_none());
}

#[test]
fn periodic_keys_are_checked() {
    let site = Sandbox::new();
    let bad = |toml: &str| {
        std::fs::write(&site.config, toml).unwrap();
        site.pushgate(&["check"]).run()
    };
    let ext = "[[extension]]\nname = \"s\"\ntype = \"script\"\ncommand = [\"/bin/true\"]\n";
    let run = bad(&format!("{ext}phase = \"periodic\"\n"));
    assert!(run.stderr.contains("a periodic extension needs `every`"), "{run}");
    let run = bad(&format!("{ext}phase = \"post\"\nevery = \"1h\"\n"));
    assert!(run.stderr.contains("`every` applies to periodic extensions only"), "{run}");
    let run = bad(&format!("{ext}phase = \"periodic\"\nevery = \"1h\"\nrefs = [\"refs/heads/main\"]\n"));
    assert!(run.stderr.contains("`refs` does not apply to periodic extensions"), "{run}");
    let run = bad(&format!("{ext}phase = \"periodic\"\nevery = \"1h\"\n"));
    run.assert_code(0);
}

/// `hooks-templates/extensions/<name>` in the repository.
fn template(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks-templates/extensions").join(name).display().to_string()
}

#[test]
fn the_shipped_periodic_example_writes_a_size_report() {
    // The script runs in repos_root (`<sandbox>/srv`): the report goes beside it.
    let extension = format!(
        "\n[[extension]]\nname = \"repo-sizes\"\ntype = \"script\"\nphase = \"periodic\"\nevery = \"1h\"\n\
         command = [\"python3\", {}, \"../sizes.jsonl\"]\nenv = [\"PATH\"]\n",
        quoted(template("repo-sizes.py"))
    );
    let (site, _) = server_of_two(&extension);
    let _watch = site.pushgate(&["deliver", "--watch"]).background();
    let text = crate::harness::poll("the report", || {
        let text = std::fs::read_to_string(site.root.join("sizes.jsonl")).ok()?;
        (text.lines().count() >= 2).then_some(text)
    });
    let rows: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r["repository"].as_str().unwrap()).collect::<Vec<_>>(), ["empty", "team/app"]);
    assert!(rows[1]["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(rows[1]["branches"], 1);
}
