//! `dirbridge-bench`: the benchmarks of issue 6 against the real binaries. Starts the directories
//! with the testkit binary (datasets cached), the cloud with `dirbridge cloud serve` on SQLite and
//! on PostgreSQL (`testkit::postgres`), the agent with `dirbridge agent sync run` / `agent run`;
//! prints a table and writes JSON. `scripts/bench.sh` builds and runs it; docs/benchmarks.md
//! keeps the figures.
//!
//! Knows nothing of the servers' internals: it drives them as an operator and reads the cloud
//! through its public API.
// Benchmarks measure real latency and pace load on the real clock.
#![allow(clippy::disallowed_methods)]

mod benches;
mod cloud;
mod directory;
mod oidc;
mod procs;
mod report;
mod signin;
mod soak;
mod sspr;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

use cloud::{Agent, Cloud, Db};
use directory::{Directory, Kind};
use report::{Machine, Report, Row};

#[derive(Parser)]
#[command(
    name = "dirbridge-bench",
    about = "Run the dirbridge benchmarks (full sync, delta, API listing, writeback, sign-in, OpenID Connect, SSPR start load) and write the figures as JSON",
    after_help = "Example:\n  scripts/bench.sh --out target/bench/latest.json\n  dirbridge-bench --out /tmp/b.json --openldap-users 10000 --ad-users 0 --databases sqlite\n  scripts/bench.sh --only writeback,sign-in,sspr-start --out /tmp/b.json"
)]
struct Args {
    /// Where to write the JSON report.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Users in the OpenLDAP dataset (0 skips OpenLDAP).
    #[arg(long, default_value_t = 100_000)]
    openldap_users: usize,
    /// Users in the Samba AD dataset (0 skips Samba).
    #[arg(long, default_value_t = 10_000)]
    ad_users: usize,
    /// Cloud databases for the full sync, comma-separated: sqlite, postgres.
    #[arg(long, default_value = "sqlite,postgres", value_delimiter = ',')]
    databases: Vec<String>,
    /// Benchmarks besides the full sync (which always runs: the others need its result),
    /// comma-separated: delta, api-listing, writeback, sign-in, oidc, sspr-start; `none` for none.
    #[arg(
        long,
        default_value = "delta,api-listing,writeback,sign-in,oidc,sspr-start",
        value_delimiter = ','
    )]
    benchmarks: Vec<String>,
    /// Run only these benchmarks, comma-separated (the names of --benchmarks, and full-sync).
    /// The full sync still runs on the first database (the others need a synced tenant);
    /// the other databases are used only when full-sync is named or --online-databases
    /// names them.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    only: Option<Vec<String>>,
    /// Databases the writeback, sign-in and SSPR start benchmarks run on, comma-separated
    /// (default: the first of --databases).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    online_databases: Option<Vec<String>>,
    /// Changes timed per delta schedule.
    #[arg(long, default_value_t = 50)]
    delta_changes: usize,
    /// Sequential self-service resets timed (one user each), each beside the raw modify.
    #[arg(long, default_value_t = 200)]
    writeback_resets: usize,
    /// Resets (one user each) for the throughput figure.
    #[arg(long, default_value_t = 96)]
    writeback_throughput_resets: usize,
    /// Resets in flight for the throughput figure.
    #[arg(long, default_value_t = 8)]
    writeback_in_flight: usize,
    /// Pass-through sign-ins timed, each beside the raw bind.
    #[arg(long, default_value_t = 100)]
    sign_ins: usize,
    /// Users the sign-ins are spread over.
    #[arg(long, default_value_t = 20)]
    sign_in_users: usize,
    /// How long the SSPR start load runs, at most (seconds).
    #[arg(long, default_value_t = 20)]
    sspr_start_secs: u64,
    /// How many SSPR start requests the load sends, at most.
    #[arg(long, default_value_t = 50_000)]
    sspr_start_max: usize,
    /// Concurrent connections of the SSPR start load.
    #[arg(long, default_value_t = 16)]
    sspr_start_connections: usize,
    /// App sign-ins through the OpenID Connect flow timed, each beside the raw bind.
    #[arg(long, default_value_t = 50)]
    oidc_sign_ins: usize,
    /// Concurrent connections of the token endpoint and userinfo loads.
    #[arg(long, default_value_t = 8)]
    oidc_connections: usize,
    /// How long each of the token endpoint and userinfo loads runs (seconds).
    #[arg(long, default_value_t = 10)]
    oidc_secs: u64,
    /// How long the multi-instance soak runs (seconds).
    #[arg(long, default_value_t = 30)]
    soak_secs: u64,
    /// Concurrent connections of the soak, half on each instance.
    #[arg(long, default_value_t = 16)]
    soak_connections: usize,
    /// Extra environment for the `dirbridge agent run` processes, KEY=VALUE, repeatable (for
    /// experiments, e.g. an LD_PRELOAD shim or RUST_LOG).
    #[arg(long, value_name = "KEY=VALUE")]
    agent_env: Vec<String>,
    /// Where `dirbridge` and `testkit` are (a release build).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Keep the working directory (logs, databases) instead of removing it.
    #[arg(long)]
    keep: bool,
    /// OpenLDAP directory sizes of the `scale` benchmark (opt-in: `--only scale`), each a full
    /// sync on every database of --databases, comma-separated.
    #[arg(
        long,
        default_value = "10000,100000,1000000",
        value_delimiter = ',',
        value_name = "LIST"
    )]
    scale_users: Vec<usize>,
}

/// What `--benchmarks` and `--only` accept.
const BENCHMARKS: &[&str] = &[
    "full-sync",
    "delta",
    "api-listing",
    "writeback",
    "sign-in",
    "sspr-start",
    "oidc",
    "multi-instance-soak",
    "scale",
];

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = Args::parse();
    if let Some(only) = &args.only {
        args.benchmarks = only.clone();
        if only.iter().all(|b| b == "scale") {
            // Only the growth table: its own directories, no other case.
            args.ad_users = 0;
            args.openldap_users = 0;
        }
        if !only.iter().any(|b| b == "full-sync" || b == "scale") {
            // The first database, and those named by --online-databases.
            let online = args.online_databases.clone().unwrap_or_default();
            let first = args.databases.first().cloned();
            args.databases
                .retain(|d| Some(d) == first.as_ref() || online.contains(d));
        }
    }
    for b in &args.benchmarks {
        if b != "none" && !BENCHMARKS.contains(&b.as_str()) {
            anyhow::bail!("unknown benchmark {b}: one of {}", BENCHMARKS.join(", "));
        }
    }
    let started = Instant::now();
    let started_at = utc_now();
    let bin = std::fs::canonicalize(args.bin_dir.join("dirbridge"))
        .context("no dirbridge binary: cargo build --release -p dirbridge")?;
    let testkit = std::fs::canonicalize(args.bin_dir.join("testkit"))
        .context("no testkit binary: cargo build --release -p dirbridge-testkit")?;
    let work = tempfile::Builder::new()
        .prefix("dirbridge-bench.")
        .tempdir()?;
    eprintln!("working directory: {}", work.path().display());
    let want = |b: &str| args.benchmarks.iter().any(|x| x == b);

    let mut rows = Vec::new();
    for (kind, users) in [
        (Kind::Samba, args.ad_users),
        (Kind::Openldap, args.openldap_users),
    ] {
        if users == 0 {
            continue;
        }
        let case = benches::case_of(kind, users);
        eprintln!("{case}: starting the directory");
        let dir = work.path().join(kind.connector_kind());
        std::fs::create_dir_all(&dir)?;
        let directory = match Directory::start(&testkit, kind, users, &dir) {
            Ok(d) => d,
            Err(e) => {
                rows.push(Row::failed("full-sync", case, &e));
                continue;
            }
        };
        eprintln!("{case}: up after {:.1} s", directory.ready_secs);
        for (i, db_name) in args.databases.iter().enumerate() {
            let run_dir = dir.join(db_name);
            let result =
                one_database(&args, &bin, &directory, db_name, &run_dir, i == 0, &want).await;
            match result {
                Ok(mut r) => rows.append(&mut r),
                Err(e) => rows.push(Row::failed("full-sync", format!("{case}, {db_name}"), &e)),
            }
        }
    }

    if want("scale") {
        rows.append(&mut scale(&args, &bin, &testkit, work.path()).await);
    }

    let report = Report {
        started_at,
        wall_secs: started.elapsed().as_secs_f64(),
        machine: machine(),
        rows,
    };
    println!("{}", report.table());
    println!(
        "machine: {} cores ({}), {} GiB, {}; Samba {}, OpenLDAP {}, {}; commit {}; whole run {:.0} s",
        report.machine.cores,
        report.machine.cpu,
        report.machine.memory_gib,
        report.machine.os,
        report.machine.samba,
        report.machine.slapd,
        report.machine.postgres,
        report.machine.commit,
        report.wall_secs
    );
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("write {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    if args.keep {
        let kept = work.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}

/// One cloud on `db_name` against `directory`: the full sync, then (on the first database) the
/// benchmarks that need a synced tenant.
async fn one_database(
    args: &Args,
    bin: &std::path::Path,
    directory: &Directory,
    db_name: &str,
    run_dir: &std::path::Path,
    first: bool,
    want: &dyn Fn(&str) -> bool,
) -> Result<Vec<Row>> {
    let (db, pg) = database(db_name)?;
    let case = format!(
        "{}, {}",
        benches::case_of(directory.kind, directory.users),
        db.label()
    );
    eprintln!("{case}: full sync");
    let mut cloud = Cloud::start(bin, run_dir, &db).await?;
    let mut agent = Agent::register(bin, run_dir, &cloud, directory).await?;
    agent.env = args
        .agent_env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (mut rows, users) = benches::full_sync(directory, &db, &cloud, &agent).await?;
    eprintln!("{case}: {}", rows[0].result);
    rows.push(benches::storage(
        &case,
        &storage(run_dir, &agent, pg.as_ref())?,
    ));
    if first && want("api-listing") && directory.kind == Kind::Openldap {
        eprintln!("{case}: API listing");
        match benches::api_listing(&cloud, users, &case).await {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => rows.push(Row::failed("api-listing", &case, &e)),
        }
    }
    if first && want("delta") {
        let default = tenant::sync::DEFAULT_DELTA_INTERVAL_SECS;
        let tightest = tenant::sync::MIN_DELTA_INTERVAL_SECS;
        for (secs, schedule) in [(default, "default"), (tightest, "tightest")] {
            eprintln!("{case}: delta, {schedule} schedule");
            match benches::delta(
                directory,
                &cloud,
                &agent,
                secs,
                args.delta_changes,
                schedule,
            )
            .await
            {
                Ok(mut r) => rows.append(&mut r),
                Err(e) => rows.push(Row::failed(
                    "delta",
                    format!("{case}, {schedule} schedule"),
                    &e,
                )),
            }
        }
    }
    let online_here = match &args.online_databases {
        Some(list) => list.iter().any(|d| d == db_name),
        None => first,
    };
    let online_wanted = [
        "writeback",
        "sign-in",
        "sspr-start",
        "oidc",
        "multi-instance-soak",
    ];
    if online_here && online_wanted.iter().any(|b| want(b)) {
        let second = (bin, &db, run_dir);
        match online(args, directory, &cloud, &agent, &case, want, second).await {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => rows.push(Row::failed("writeback", &case, &e)),
        }
    }
    cloud.stop();
    Ok(rows)
}

/// The cloud's database by its `--databases` name: SQLite in the data directory, or an empty
/// database on a throwaway PostgreSQL (kept running while the handle lives).
fn database(name: &str) -> Result<(Db, Option<testkit::postgres::Postgres>)> {
    match name {
        "sqlite" => Ok((Db::Sqlite, None)),
        "postgres" => {
            let pg = testkit::postgres::Postgres::start()?;
            let url = pg.create_database("bench")?;
            Ok((Db::Postgres(url), Some(pg)))
        }
        other => anyhow::bail!("unknown database {other}: sqlite or postgres"),
    }
}

/// Bytes on disk after a full sync: the cloud's database (SQLite: its files in the data
/// directory; PostgreSQL: `pg_database_size`) and the agent's connector space.
fn storage(
    run_dir: &std::path::Path,
    agent: &Agent,
    pg: Option<&testkit::postgres::Postgres>,
) -> Result<benches::Storage> {
    // The files of `name` in `dir` (with `-wal` and `-shm` when `wal`).
    let size = |dir: &std::path::Path, name: &str, wal: bool| -> Result<u64> {
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            if !suffix.is_empty() && !wal {
                continue;
            }
            if let Ok(m) = std::fs::metadata(dir.join(format!("{name}{suffix}"))) {
                total += m.len();
            }
        }
        Ok(total)
    };
    let cloud_dir = run_dir.join("cloud");
    let (cloud_db, cloud_wal) = match pg {
        Some(pg) => (
            pg.query_value("bench", "SELECT pg_database_size('bench')")?
                .parse()
                .context("pg_database_size")?,
            0,
        ),
        None => {
            let db = size(&cloud_dir, "dirbridge.db", false)?;
            (db, size(&cloud_dir, "dirbridge.db", true)? - db)
        }
    };
    Ok(benches::Storage {
        cloud_db,
        cloud_wal,
        space: size(&agent.data_dir, "connector-space.db", true)?,
    })
}

/// The opt-in growth table (`--only scale`): a full sync of each OpenLDAP size of
/// `--scale-users` on each database, fresh cloud and agent each time.
async fn scale(
    args: &Args,
    bin: &std::path::Path,
    testkit: &std::path::Path,
    work: &std::path::Path,
) -> Vec<Row> {
    let mut points = Vec::new();
    let mut rows = Vec::new();
    for &users in &args.scale_users {
        let case = benches::case_of(Kind::Openldap, users);
        eprintln!("scale, {case}: starting the directory");
        let dir = work.join(format!("scale-{users}"));
        let directory = match std::fs::create_dir_all(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|_| Directory::start(testkit, Kind::Openldap, users, &dir))
        {
            Ok(d) => d,
            Err(e) => {
                rows.push(Row::failed("scale", case, &e));
                continue;
            }
        };
        eprintln!("scale, {case}: up after {:.1} s", directory.ready_secs);
        for db_name in &args.databases {
            let run_dir = dir.join(db_name);
            let point = scale_point(bin, &directory, db_name, &run_dir).await;
            match point {
                Ok(p) => {
                    eprintln!("scale, {case}, {db_name}: {:.1} s", p.seconds);
                    points.push(p);
                }
                Err(e) => rows.push(Row::failed("scale", format!("{case}, {db_name}"), &e)),
            }
        }
    }
    rows.extend(benches::scale_rows(&points));
    rows
}

async fn scale_point(
    bin: &std::path::Path,
    directory: &Directory,
    db_name: &str,
    run_dir: &std::path::Path,
) -> Result<benches::ScalePoint> {
    let (db, pg) = database(db_name)?;
    let mut cloud = Cloud::start(bin, run_dir, &db).await?;
    let agent = Agent::register(bin, run_dir, &cloud, directory).await?;
    let (rows, _) = benches::full_sync(directory, &db, &cloud, &agent).await?;
    let storage = storage(run_dir, &agent, pg.as_ref())?;
    cloud.stop();
    benches::ScalePoint::of(directory.users, db.label(), &rows, storage)
}

/// The benchmarks that need the agent service with writeback on: self-service resets, sign-in,
/// the SSPR start load, the multi-instance soak (whose second instance is started from
/// `second`: the binary, the database and the run's directory). One user per reset and per
/// sign-in, taken from the synced users.
async fn online(
    args: &Args,
    directory: &Directory,
    cloud: &Cloud,
    agent: &Agent,
    case: &str,
    want: &dyn Fn(&str) -> bool,
    second: (&std::path::Path, &Db, &std::path::Path),
) -> Result<Vec<Row>> {
    let (seq_n, tp_n) = if want("writeback") {
        (args.writeback_resets, args.writeback_throughput_resets)
    } else {
        (0, 0)
    };
    let sign_n = if want("sign-in") || want("oidc") || want("multi-instance-soak") {
        args.sign_in_users
    } else {
        0
    };
    let need = seq_n + tp_n + 1 + sign_n;
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    let mut people = loop {
        let path = match &after {
            Some(a) => format!("/api/v1/users?source=onPremises&limit=1000&after={a}"),
            None => "/api/v1/users?source=onPremises&limit=1000".to_string(),
        };
        let page = cloud.get(&path).await?;
        listed.extend(page["items"].as_array().cloned().unwrap_or_default());
        let people = directory.people(&listed, need)?;
        match page["next"].as_str() {
            Some(n) if people.len() < need => after = Some(n.to_string()),
            _ => break people,
        }
    };
    if people.len() < need {
        anyhow::bail!(
            "only {} ordinary synced users found, {need} needed",
            people.len()
        );
    }
    let mut rest = people.split_off(seq_n);
    let mut sequential = people;
    let mut after_tp = rest.split_off(tp_n);
    let throughput = rest;
    let signers = after_tp.split_off(1);
    let warm_up = after_tp.remove(0);
    let resetting: Vec<_> = sequential.iter().chain(&throughput).cloned().collect();

    eprintln!("{case}: preparing the tenant for writeback and sign-in");
    let mut online = sspr::prepare(
        cloud,
        agent,
        &resetting,
        &warm_up,
        &signers,
        want("writeback"),
    )
    .await?;
    let mut rows = Vec::new();
    if want("writeback") {
        eprintln!("{case}: writeback, {seq_n} sequential resets");
        match sspr::writeback_sequential(directory, cloud, agent, &online, &mut sequential, case)
            .await
        {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => rows.push(Row::failed(
                "writeback",
                format!("{case}: sequential resets"),
                &e,
            )),
        }
        eprintln!(
            "{case}: writeback, {tp_n} resets {} in flight",
            args.writeback_in_flight
        );
        match sspr::writeback_throughput(
            cloud,
            &online,
            &throughput,
            args.writeback_in_flight,
            case,
        )
        .await
        {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => rows.push(Row::failed("writeback", format!("{case}: throughput"), &e)),
        }
    }
    if want("sign-in") {
        eprintln!("{case}: pass-through sign-in");
        match signin::sign_in(directory, cloud, &signers, args.sign_ins, case).await {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => rows.push(Row::failed("sign-in", case, &e)),
        }
    }
    if want("oidc") {
        eprintln!("{case}: OpenID Connect sign-in, token endpoint, userinfo");
        match oidc::oidc(
            directory,
            cloud,
            &signers,
            args.oidc_sign_ins,
            args.oidc_connections,
            args.oidc_secs,
            case,
        )
        .await
        {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => rows.push(Row::failed("oidc", case, &e)),
        }
    }
    if want("sspr-start") {
        eprintln!("{case}: SSPR start load");
        let upns: Vec<String> = listed
            .iter()
            .filter_map(|u| u["userPrincipalName"].as_str().map(str::to_string))
            .take(5000)
            .collect();
        for spread in [false, true] {
            match sspr::start_load(
                cloud,
                &upns,
                args.sspr_start_connections,
                args.sspr_start_secs,
                args.sspr_start_max,
                spread,
                case,
            )
            .await
            {
                Ok(mut r) => rows.append(&mut r),
                Err(e) => rows.push(Row::failed("api-sspr-start", case, &e)),
            }
        }
    }
    if want("multi-instance-soak") {
        let (bin, db, run_dir) = second;
        let case = format!("{case}, {} s", args.soak_secs);
        if !matches!(db, Db::Postgres(_)) {
            rows.push(Row::not_measured(
                "multi-instance-soak",
                case,
                "several instances need PostgreSQL: --online-databases postgres",
            ));
        } else {
            eprintln!("{case}: multi-instance soak");
            let data = run_dir.join("cloud-b");
            std::fs::create_dir_all(&data)?;
            let (url_b, mut b) = cloud::serve(bin, &data, db, &run_dir.join("cloud-b.log")).await?;
            let upns: Vec<String> = listed
                .iter()
                .filter_map(|u| u["userPrincipalName"].as_str().map(str::to_string))
                .take(5000)
                .collect();
            let urls = [cloud.url.clone(), url_b];
            match soak::soak(
                &urls,
                &upns,
                &signers,
                args.soak_connections,
                args.soak_secs,
                &case,
            )
            .await
            {
                Ok(mut r) => rows.append(&mut r),
                Err(e) => rows.push(Row::failed("multi-instance-soak", &case, &e)),
            }
            b.stop();
        }
    }
    online.service.stop();
    Ok(rows)
}

fn utc_now() -> String {
    procs::run({
        let mut c = std::process::Command::new("date");
        c.args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
        c
    })
    .map(|s| s.trim().to_string())
    .unwrap_or_default()
}

fn first_line(program: &str, args: &[&str]) -> String {
    let mut c = std::process::Command::new(program);
    c.args(args);
    match c.output() {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or("").trim().to_string()
        }
        Err(_) => "not installed".into(),
    }
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    let slapd = first_line("slapd", &["-VV"]);
    let slapd = slapd
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or(&slapd)
        .to_string();
    let pg_bin =
        std::env::var("DIRBRIDGE_PG_BIN").unwrap_or_else(|_| testkit::postgres::BIN_DIR.into());
    let mut commit = first_line("git", &["rev-parse", "--short", "HEAD"]);
    if !first_line("git", &["status", "--porcelain"]).is_empty() {
        commit.push_str(" (with uncommitted changes)");
    }
    Machine {
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu,
        memory_gib: (mem_kb as f64 / 1024.0 / 1024.0).round() as u64,
        os,
        samba: first_line("samba", &["-V"])
            .trim_start_matches("Version ")
            .to_string(),
        slapd,
        postgres: first_line(&format!("{pg_bin}/postgres"), &["--version"]),
        commit,
    }
}
