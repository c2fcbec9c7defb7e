//! The benchmarks of the sync: full sync, API listing, delta. Each takes what it needs (a
//! directory, a cloud, an agent) and returns table rows; a failure becomes a `FAILED` row,
//! never a number. Writeback and the SSPR start load are in `sspr`, sign-in in `signin`.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::cloud::{random_text, Agent, Cloud, Db};
use crate::directory::{Directory, Kind};
use crate::report::{quantile, thousands, Row};

const MB: f64 = 1024.0 * 1024.0;

/// Agent peak memory goal at 100,000 objects (issue 6).
const AGENT_RSS_GOAL_MB: f64 = 150.0;
/// Full sync goal: within this factor of the raw paged read.
const FULL_SYNC_RATIO_GOAL: f64 = 1.3;
/// Delta goal with the default schedule: p95 under this many seconds.
const DELTA_P95_GOAL_SECS: f64 = 2.0;

/// Full sync: the agent's `sync run --full` from start until the cloud has every object (the
/// agent exits only after the cloud committed its last batch; the run report is then read back
/// and must count every entry), beside a paged ldapsearch of the same entries and attributes.
/// Returns the rows and the number of users in scope.
pub async fn full_sync(
    directory: &Directory,
    db: &Db,
    cloud: &Cloud,
    agent: &Agent,
) -> Result<(Vec<Row>, u64)> {
    let case = format!(
        "{} {} users, {}",
        directory.kind.label(),
        thousands(directory.users as u64),
        db.label()
    );
    // The raw read the agent does: same filters, roots, attributes and page size.
    let cfg = agent::connector::list(&agent.data_dir)?
        .into_iter()
        .next()
        .context("the agent has no connector")?;
    let attrs = agent::sync::map::attributes(&cfg);
    let page = agent::sync::PAGE_SIZE as u32;
    // (time, entries, users)
    let raw_read = || -> Result<(Duration, u64, u64)> {
        let mut total = (Duration::ZERO, 0, 0);
        for (i, filter) in [cfg.user_filter(), cfg.group_filter()].iter().enumerate() {
            for root in cfg.roots() {
                let (t, n) = directory.paged_search(&root, filter, &attrs, page)?;
                total.0 += t;
                total.1 += n;
                if i == 0 {
                    total.2 += n;
                }
            }
        }
        Ok(total)
    };
    raw_read()?; // warm the server's caches for both
    let (raw, entries, users) = raw_read()?;

    let started = Instant::now();
    let finished = agent.full_sync()?;
    let runs = cloud.get("/api/v1/sync/runs?limit=1").await?;
    let run = runs.get(0).cloned().unwrap_or(Value::Null);
    let elapsed = started.elapsed();
    let added = run["added"].as_u64().unwrap_or(0) + run["updated"].as_u64().unwrap_or(0);
    let errors = run["errors"].as_u64().unwrap_or(0);
    if run["kind"] != "full" || added != entries || errors != 0 {
        bail!(
            "the run report does not account for every entry: ldapsearch read {entries}, the run {}",
            run
        );
    }
    let secs = elapsed.as_secs_f64();
    let ratio = secs / raw.as_secs_f64();
    let mut rows = vec![Row {
        result: format!(
            "{secs:.1} s for {} objects ({:.0}/s); paged ldapsearch {:.2} s; ratio {ratio:.1}×",
            thousands(entries),
            entries as f64 / secs,
            raw.as_secs_f64()
        ),
        values: json!({
            "objects": entries, "seconds": secs, "agentProcessSeconds": finished.elapsed.as_secs_f64(),
            "ldapsearchSeconds": raw.as_secs_f64(), "ratio": ratio,
        }),
        ..Row::new("full-sync", &case)
    }
    .goal(format!("≤ {FULL_SYNC_RATIO_GOAL}× the raw read"), ratio <= FULL_SYNC_RATIO_GOAL)];

    let agent_peak = finished
        .peak_rss
        .ok_or_else(|| anyhow!("the agent's peak memory was not read while it ran"))?;
    let agent_mb = agent_peak as f64 / MB;
    let cloud_mb = cloud.peak_rss()? as f64 / MB;
    let mut mem = Row {
        result: format!("agent {agent_mb:.0} MB, cloud {cloud_mb:.0} MB"),
        values: json!({ "agentPeakRssBytes": agent_peak, "cloudPeakRssBytes": cloud.peak_rss()? }),
        ..Row::new("peak RSS", &case)
    };
    if entries >= 100_000 {
        mem = mem.goal(
            format!("agent < {AGENT_RSS_GOAL_MB:.0} MB at 100,000 objects"),
            agent_mb < AGENT_RSS_GOAL_MB,
        );
    }
    rows.push(mem);
    Ok((rows, users))
}

/// Bytes on disk after a full sync.
#[derive(Debug, Clone, Copy)]
pub struct Storage {
    /// The cloud's database: SQLite's main file, or PostgreSQL's `pg_database_size`.
    pub cloud_db: u64,
    /// SQLite's WAL and shared-memory files beside it (0 on PostgreSQL).
    pub cloud_wal: u64,
    /// The agent's connector space, WAL included.
    pub space: u64,
}

/// The `storage` row of a full sync.
pub fn storage(case: &str, s: &Storage) -> Row {
    let wal = if s.cloud_wal > 0 {
        format!(" (+ {:.0} MB WAL)", s.cloud_wal as f64 / MB)
    } else {
        String::new()
    };
    Row {
        result: format!(
            "cloud database {:.0} MB{wal}; connector space {:.0} MB",
            s.cloud_db as f64 / MB,
            s.space as f64 / MB
        ),
        values: json!({ "cloudDatabaseBytes": s.cloud_db, "cloudWalBytes": s.cloud_wal, "connectorSpaceBytes": s.space }),
        ..Row::new("storage", case)
    }
}

/// One size of the `scale` benchmark.
#[derive(Debug, Clone)]
pub struct ScalePoint {
    pub users: usize,
    pub db: &'static str,
    pub objects: u64,
    pub seconds: f64,
    pub ratio: f64,
    pub agent_rss: u64,
    pub cloud_rss: u64,
    pub storage: Storage,
}

impl ScalePoint {
    /// From the rows [`full_sync`] made (its figures are in their `values`).
    pub fn of(
        users: usize,
        db: &'static str,
        rows: &[Row],
        storage: Storage,
    ) -> Result<ScalePoint> {
        let sync = &rows.first().context("no full-sync row")?.values;
        let mem = &rows.get(1).context("no peak RSS row")?.values;
        let n = |v: &Value, k: &str| v[k].as_f64().with_context(|| format!("no {k}"));
        Ok(ScalePoint {
            users,
            db,
            objects: n(sync, "objects")? as u64,
            seconds: n(sync, "seconds")?,
            ratio: n(sync, "ratio")?,
            agent_rss: n(mem, "agentPeakRssBytes")? as u64,
            cloud_rss: n(mem, "cloudPeakRssBytes")? as u64,
            storage,
        })
    }
}

/// The growth table: per database and size, the full sync's time, memory and storage, each
/// per object beside the smallest size's, so growth that is not linear shows as a factor ≠ 1.
pub fn scale_rows(points: &[ScalePoint]) -> Vec<Row> {
    points
        .iter()
        .map(|p| {
            let base = points
                .iter()
                .filter(|q| q.db == p.db)
                .min_by_key(|q| q.users)
                .unwrap_or(p);
            let per = |x: f64, n: u64| x / n.max(1) as f64;
            let us = per(p.seconds * 1e6, p.objects);
            let growth = us / per(base.seconds * 1e6, base.objects);
            let db_kb = per(p.storage.cloud_db as f64 / 1024.0, p.objects);
            Row {
                result: format!(
                    "{:.1} s ({:.0} objects/s, {us:.0} µs an object: {growth:.2}× the {} figure; {:.1}× the raw read); peak RSS agent {:.0} MB, cloud {:.0} MB; cloud database {:.0} MB ({db_kb:.2} KB an object), connector space {:.0} MB",
                    p.seconds,
                    p.objects as f64 / p.seconds,
                    thousands(base.users as u64),
                    p.ratio,
                    p.agent_rss as f64 / MB,
                    p.cloud_rss as f64 / MB,
                    p.storage.cloud_db as f64 / MB,
                    p.storage.space as f64 / MB,
                ),
                values: json!({
                    "users": p.users, "objects": p.objects, "seconds": p.seconds, "ratio": p.ratio,
                    "microsecondsPerObject": us, "perObjectGrowth": growth,
                    "agentPeakRssBytes": p.agent_rss, "cloudPeakRssBytes": p.cloud_rss,
                    "cloudDatabaseBytes": p.storage.cloud_db, "cloudWalBytes": p.storage.cloud_wal,
                    "connectorSpaceBytes": p.storage.space,
                }),
                ..Row::new(
                    "scale",
                    format!("{}, {}", case_of(Kind::Openldap, p.users), p.db),
                )
            }
        })
        .collect()
}

/// Cloud API: every user, page by page (1,000 a page, the API's largest), as an admin.
pub async fn api_listing(cloud: &Cloud, expected_users: u64, case: &str) -> Result<Vec<Row>> {
    let started = Instant::now();
    let mut after: Option<String> = None;
    let (mut users, mut pages) = (0u64, 0u64);
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/users?source=onPremises&limit=1000&after={a}"),
            None => "/api/v1/users?source=onPremises&limit=1000".to_string(),
        };
        let page = cloud.get(&path).await?;
        users += page["items"].as_array().map(|a| a.len()).unwrap_or(0) as u64;
        pages += 1;
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if users != expected_users {
        bail!("listed {users} synced users, the directory holds {expected_users}");
    }
    Ok(vec![Row {
        result: format!(
            "{} users in {pages} pages: {secs:.2} s ({:.0} users/s, {:.1} ms a page)",
            thousands(users),
            users as f64 / secs,
            secs * 1000.0 / pages as f64
        ),
        values: json!({ "users": users, "pages": pages, "seconds": secs }),
        ..Row::new("api-listing", case)
    }])
}

/// Delta: one attribute changed on-prem (`ldapmodify` of displayName, as the directory's
/// administrator) until the cloud API shows it, with `dirbridge agent run` on the given
/// schedule. The changes are spaced at a fifth of the interval with jitter, each on its own
/// user, so they fall at every point of the agent's cycle; each is timed on its own (the API is
/// polled every 25 ms).
pub async fn delta(
    directory: &Directory,
    cloud: &Cloud,
    agent: &Agent,
    interval_secs: u32,
    changes: usize,
    schedule: &str,
) -> Result<Vec<Row>> {
    let case = format!(
        "{} {} users, {schedule} schedule ({interval_secs} s)",
        directory.kind.label(),
        thousands(directory.users as u64)
    );
    cloud.set_delta_interval(interval_secs).await?;
    let page = cloud
        .get(&format!(
            "/api/v1/users?source=onPremises&limit={}",
            changes + 1
        ))
        .await?;
    let users: Vec<(String, String)> = page["items"]
        .as_array()
        .context("no users")?
        .iter()
        .filter_map(|u| {
            Some((
                u["id"].as_str()?.to_string(),
                u["onPremises"]["distinguishedName"].as_str()?.to_string(),
            ))
        })
        .collect();
    if users.len() < changes + 1 {
        bail!("only {} synced users to change", users.len());
    }
    let mut service = agent.service()?;
    let tag = random_text(6);
    // A first change, not counted: waits out the service's start (its first cycle is a full
    // import of everything, unchanged).
    let warm = change(directory, &users[changes], &format!("warm-up {tag}"))?;
    wait_visible(cloud, &warm, Duration::from_secs(900)).await?;

    let spacing = f64::from(interval_secs) / 5.0;
    let give_up = Duration::from_secs(u64::from(interval_secs) * 4 + 120);
    let mut pending: Vec<Pending> = Vec::new();
    let mut latencies = Vec::new();
    let mut next_at = Instant::now();
    let mut made = 0;
    while made < changes || !pending.is_empty() {
        if made < changes && Instant::now() >= next_at {
            pending.push(change(
                directory,
                &users[made],
                &format!("delta {tag} {made}"),
            )?);
            made += 1;
            let jitter: f64 = rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..1.5);
            next_at = Instant::now() + Duration::from_secs_f64(spacing * jitter);
        }
        let mut still = Vec::new();
        for p in pending.drain(..) {
            if visible(cloud, &p).await? {
                latencies.push(p.at.elapsed().as_secs_f64());
            } else if p.at.elapsed() > give_up {
                bail!("a change was not visible in the cloud after {give_up:?}");
            } else {
                still.push(p);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    service.stop();
    let (p50, p95) = (quantile(&latencies, 0.5), quantile(&latencies, 0.95));
    let row = Row {
        result: format!("p50 {p50:.2} s, p95 {p95:.2} s over {changes} changes"),
        values: json!({ "intervalSecs": interval_secs, "p50": p50, "p95": p95, "latencies": latencies }),
        ..Row::new("delta", case)
    };
    Ok(vec![if schedule == "default" {
        row.goal(
            format!("p95 < {DELTA_P95_GOAL_SECS} s"),
            p95 < DELTA_P95_GOAL_SECS,
        )
    } else {
        row
    }])
}

struct Pending {
    id: String,
    display_name: String,
    at: Instant,
}

fn change(directory: &Directory, user: &(String, String), display_name: &str) -> Result<Pending> {
    directory.replace(&user.1, "displayName", display_name)?;
    Ok(Pending {
        id: user.0.clone(),
        display_name: display_name.to_string(),
        at: Instant::now(),
    })
}

async fn visible(cloud: &Cloud, p: &Pending) -> Result<bool> {
    let u = cloud.get(&format!("/api/v1/users/{}", p.id)).await?;
    Ok(u["displayName"].as_str() == Some(p.display_name.as_str()))
}

async fn wait_visible(cloud: &Cloud, p: &Pending, deadline: Duration) -> Result<()> {
    while p.at.elapsed() < deadline {
        if visible(cloud, p).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the warm-up change was not visible after {deadline:?}")
}

/// The kind's label, for rows about a directory that could not start.
pub fn case_of(kind: Kind, users: usize) -> String {
    format!("{} {} users", kind.label(), thousands(users as u64))
}
