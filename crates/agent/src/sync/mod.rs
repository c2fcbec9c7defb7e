//! The sync engine: one cycle per connector reads the directory (full: paged search; delta: AD
//! DirSync / OpenLDAP syncrepl refreshOnly with the stored cookie), maps each entry
//! ([`map`]), compares it with the connector space and exports only differences, in batches of
//! at most [`MAX_BATCH_OBJECTS`] — up to [`BULK_BATCH_OBJECTS`] once the cloud's answer says it
//! takes them — and [`MAX_BATCH_MEMBERS`] member references. The space rows and the cookie are committed only after the
//! cloud accepted the batches covering them; a batch is recorded as in flight before it is
//! sent and replayed as it was (same run id and seq) if the agent stopped in between.
//! Deletes are counted before any of them is exported, with those the cloud accepted within the
//! deletion window: above the cloud's threshold they wait for `dirbridge sync allow-deletes`.
//! Objects the cloud refused are kept on a list and sent again by every delta. A full import
//! forgets the cookie when it starts, so one that fails is followed by another. Each include OU
//! must exist before anything is read. Staging mode computes everything and exports nothing.

pub mod diff;
pub mod map;
pub mod notify;
pub mod scope;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ldap::{Connection, Entry, LdapError, Scope};
use proto::sync::{
    AgentSyncSettings, BatchResult, ObjectKind, RunKind, RunOutcome, SyncBatch, SyncObject,
    SyncRun, BULK_BATCH_OBJECTS, MAX_BATCH_MEMBERS, MAX_BATCH_OBJECTS,
};
use serde_json::json;

use crate::connector::{self, ConnectorConfig, DirectoryKind};
use crate::events::EventLog;
use crate::link::Link;
use crate::space::{PageWrites, Space};
use crate::AgentError;
use map::{Mapped, MappedObject};

/// Entries per page of a full import's paged search.
pub const PAGE_SIZE: i32 = 500;

/// What the engine is doing, for progress bars.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub connector: String,
    pub phase: &'static str,
    /// Entries read from the directory so far.
    pub read: u64,
    /// Objects (upserts + deletes) accepted by the cloud so far.
    pub exported: u64,
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Test hooks: ways to stop a cycle at a precise point, as a crash would.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Return an error right after the cloud accepted a batch, before anything is committed
    /// locally (space rows, cookie).
    pub fail_after_accepted_batch: bool,
    /// Return an error once the next batch has been sent and the cloud has answered it, before
    /// the batch before it, answered too, is committed locally: both stay in flight.
    pub fail_with_two_batches_in_flight: bool,
}

/// The engine for one agent data directory.
pub struct Engine {
    data_dir: PathBuf,
    link: Link,
    space: Space,
    events: EventLog,
    progress: Option<ProgressFn>,
    pub hooks: Hooks,
}

impl Engine {
    /// Opens the registered agent in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<Engine, AgentError> {
        let identity = crate::identity::load(data_dir)?;
        let link = identity.link()?;
        Engine::with_link(data_dir, link).await
    }

    /// An engine that talks to the cloud through `link`.
    pub async fn with_link(data_dir: &Path, link: Link) -> Result<Engine, AgentError> {
        Ok(Engine {
            data_dir: data_dir.to_path_buf(),
            link,
            space: Space::open(data_dir).await?,
            events: EventLog::open(data_dir),
            progress: None,
            hooks: Hooks::default(),
        })
    }

    pub fn set_progress(&mut self, f: ProgressFn) {
        self.progress = Some(f);
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn space(&self) -> &Space {
        &self.space
    }

    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// One cycle over every connector: reads the cloud's settings, runs each connector (a
    /// failed connector is reported as a failed run and the others still run) and reports
    /// every run. `full` forces a full import; without a stored cookie a connector does one
    /// anyway. Errors only for what stops the whole cycle (cloud unreachable, a test hook).
    pub async fn run_cycle(&mut self, full: bool) -> Result<Vec<SyncRun>, AgentError> {
        let settings = self.link.config().await?;
        let connectors = connector::list(&self.data_dir)?;
        if connectors.is_empty() {
            return Err(AgentError::Config(format!(
                "no connector in {}: add one with `dirbridge agent connector add`",
                self.data_dir.display()
            )));
        }
        let mut runs = Vec::new();
        for cfg in connectors {
            let run = self.run_connector(&cfg, full, &settings).await?;
            runs.push(run);
        }
        Ok(runs)
    }

    async fn run_connector(
        &mut self,
        cfg: &ConnectorConfig,
        full: bool,
        settings: &AgentSyncSettings,
    ) -> Result<SyncRun, AgentError> {
        let started_at = crate::now();
        let run_id = uuid::Uuid::now_v7().to_string();
        let mut run = RunState::new(cfg, &run_id, settings.staging);
        run.progress = self.progress.clone();
        let mut result = self.import_and_export(cfg, full, settings, &mut run).await;
        if result.is_err() && run.in_flight.is_some() {
            // The import stopped while a batch was in flight: take the cloud's answer, so the
            // batch is committed here as it would have been before the import went on.
            if let Err(e) = self.finish_send(cfg, &mut run).await {
                if matches!(e, AgentError::Interrupted(_)) {
                    result = Err(e);
                }
            }
        }
        let mut report = SyncRun {
            run_id: run_id.clone(),
            agent_id: self.link.agent_id().to_string(),
            connector: cfg.name.clone(),
            kind: run.kind,
            outcome: RunOutcome::Succeeded,
            started_at,
            finished_at: Some(crate::now()),
            added: run.added,
            updated: run.updated,
            deleted: run.deleted,
            errors: run.errors,
            pending_deletes: run.pending_deletes,
            message: None,
        };
        match result {
            Ok(outcome) => {
                report.outcome = outcome;
                if outcome == RunOutcome::Succeeded && run.errors > 0 {
                    report.outcome = RunOutcome::CompletedWithErrors;
                }
                report.message = run.message.take();
            }
            Err(AgentError::Interrupted(m)) => return Err(AgentError::Interrupted(m)),
            Err(e) => {
                report.outcome = RunOutcome::Failed;
                report.message = Some(e.to_string());
                self.events.error(
                    "sync.run.failed",
                    format!("sync of connector {} failed: {e}", cfg.name),
                    json!({ "runId": run_id, "connector": cfg.name }),
                );
            }
        }
        self.events.info(
            "sync.run.finished",
            format!(
                "{:?} {:?} run of {}: {} added, {} updated, {} deleted, {} errors, {} deletes pending",
                report.kind, report.outcome, cfg.name, report.added, report.updated, report.deleted,
                report.errors, report.pending_deletes
            ),
            serde_json::to_value(&report).unwrap_or_default(),
        );
        self.space.set_last_run(&cfg.name, &report).await?;
        if let Err(e) = self.link.report_run(&report).await {
            self.events.warn(
                "sync.run.report_failed",
                format!("the run report could not be sent: {e}"),
                json!({ "runId": run_id }),
            );
        }
        Ok(report)
    }

    async fn import_and_export(
        &mut self,
        cfg: &ConnectorConfig,
        full: bool,
        settings: &AgentSyncSettings,
        run: &mut RunState,
    ) -> Result<RunOutcome, AgentError> {
        // Batches the cloud may have applied while this side did not commit them: send them
        // again, exactly as they were and in order; the cloud answers a replay with its first
        // answer and applies a batch that never reached it.
        for batch in self.space.inflight(&cfg.name).await? {
            self.events.warn(
                "sync.batch.replay",
                format!(
                    "replaying batch {} of run {} left in flight by an earlier cycle",
                    batch.seq, batch.run_id
                ),
                json!({ "runId": batch.run_id, "seq": batch.seq }),
            );
            let json = encode(&batch)?;
            match self.link.send_batch(json).await {
                Ok(result) => {
                    // The cloud's first answer, about the earlier run: logged, not counted here.
                    self.space
                        .commit_answer(&cfg.name, &batch, &result.errors, None)
                        .await?;
                    for a in &batch.deletes {
                        self.space.unindex(&cfg.name, a).await?;
                    }
                    self.events.info(
                        "sync.batch.replayed",
                        format!(
                            "batch {} of run {} is committed: {} added, {} updated, {} deleted, {} errors",
                            batch.seq, batch.run_id, result.added, result.updated, result.deleted, result.errors.len()
                        ),
                        json!({ "runId": batch.run_id, "seq": batch.seq }),
                    );
                }
                Err(e) if !e.is_transient() => {
                    // Refused as a whole: nothing of it was applied. The import recomputes it.
                    self.space
                        .commit_batch(
                            &cfg.name,
                            &SyncBatch {
                                upserts: vec![],
                                deletes: vec![],
                                ..batch
                            },
                            None,
                        )
                        .await?;
                    self.events.warn(
                        "sync.batch.dropped",
                        format!("the replayed batch was refused: {e}"),
                        json!({}),
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }

        let password = connector::password(&self.data_dir, &cfg.name)?;
        let mut conn = connector::connect(cfg, &password).await?;
        drop(password);
        self.check_roots(cfg, &mut conn).await?;
        let cookie = self.space.cookie(&cfg.name).await?;
        let mut full = full || cookie.is_none();
        let mut new_cookie: Option<Vec<u8>> = None;

        if !full {
            run.kind = RunKind::Delta;
            let cookie = cookie.unwrap_or_default();
            let delta = match cfg.kind {
                DirectoryKind::Ad => self.ad_delta(cfg, &mut conn, &cookie, run).await,
                DirectoryKind::Openldap => self.openldap_delta(cfg, &mut conn, &cookie, run).await,
            };
            match delta {
                Ok(DeltaOutcome::Done(c)) => new_cookie = Some(c),
                Ok(DeltaOutcome::NeedsFull(c, why)) => {
                    self.events.info(
                        "sync.delta.escalated",
                        format!("{why}: running a full import"),
                        json!({ "connector": cfg.name }),
                    );
                    full = true;
                    new_cookie = c;
                    // The full import recomputes everything the delta queued.
                    run.reset();
                }
                Err(AgentError::Directory { source, .. }) if cookie_refused(&source) => {
                    self.events.warn(
                        "sync.cookie.refused",
                        format!("the directory refused the stored delta cookie ({source}): falling back to a full import"),
                        json!({ "connector": cfg.name, "diagnostic": source.diagnostic() }),
                    );
                    full = true;
                    run.reset();
                }
                Err(e) => return Err(e),
            }
        }
        // What the delta sent is answered and committed before anything else is read.
        self.finish_send(cfg, run).await?;
        if !full {
            self.retry_refused(cfg, &mut conn, run).await?;
        }
        if full {
            run.kind = RunKind::Full;
            // A full import that does not finish (the directory gone, a size limit, a crash) is
            // followed by a full import, never by a delta from an older cookie: the stored cookie
            // goes now, and the import's own comes back only with its last batch.
            self.space.set_cookie(&cfg.name, None).await?;
            let c = match cfg.kind {
                DirectoryKind::Ad => self.ad_full(cfg, &mut conn, run).await?,
                DirectoryKind::Openldap => self.openldap_full(cfg, &mut conn, run).await?,
            };
            new_cookie = new_cookie.or(Some(c));
            self.finish_send(cfg, run).await?;
            let unseen = self.space.unseen(&cfg.name, &run.run_id).await?;
            for (anchor, _dn) in unseen {
                run.deletes.insert(anchor);
            }
        }
        let _ = conn.unbind().await;

        // Deletes are counted before any is exported, with those the cloud accepted from this
        // connector within the deletion window.
        let n_deletes = run.deletes.len() as u32;
        let window = i64::from(settings.deletion_window_secs);
        let recent = self
            .space
            .deletes_since(&cfg.name, crate::now() - window)
            .await?;
        let decision = diff::deletes(n_deletes, recent, settings);
        if decision == diff::DeleteDecision::Staged {
            run.pending_deletes = n_deletes;
            run.added = run.would_add;
            run.updated = run.would_update;
            run.message = Some(format!(
                "staging: {} to add, {} to update, {} to delete; nothing exported",
                run.would_add, run.would_update, n_deletes
            ));
            self.events.info(
                "sync.staged",
                run.message.clone().unwrap_or_default(),
                json!({ "connector": cfg.name }),
            );
            return Ok(RunOutcome::Staged);
        }
        if decision == diff::DeleteDecision::Stop {
            // Upserts may go; the deletes wait, and so does the cookie (so they are seen again).
            self.flush(cfg, run, true, None).await?;
            run.pending_deletes = n_deletes;
            let total = n_deletes.saturating_add(recent);
            let within = duration_words(settings.deletion_window_secs);
            let msg = if recent == 0 {
                format!(
                    "{n_deletes} deletes exceed the deletion threshold of {} (within {within}): nothing was deleted. Check the scope, then run `dirbridge sync allow-deletes` (or raise the threshold)",
                    settings.deletion_threshold
                )
            } else {
                format!(
                    "{total} deletes within {within} exceed the deletion threshold of {}: {recent} were exported by earlier runs, the {n_deletes} of this run wait. Check the scope, then run `dirbridge sync allow-deletes` (or raise the threshold)",
                    settings.deletion_threshold
                )
            };
            self.events.error(
                "sync.deletion_threshold",
                msg.clone(),
                json!({
                    "connector": cfg.name,
                    "pendingDeletes": n_deletes,
                    "deletesInWindow": total,
                    "exportedInWindow": recent,
                    "windowSecs": settings.deletion_window_secs,
                    "threshold": settings.deletion_threshold,
                }),
            );
            run.message = Some(msg);
            return Ok(RunOutcome::StoppedDeletionThreshold);
        }
        let deletes: Vec<String> = std::mem::take(&mut run.deletes).into_iter().collect();
        run.pending_delete_list = deletes;
        self.flush(cfg, run, true, new_cookie.as_deref()).await?;
        if settings.allow_deletes_once && n_deletes > 0 {
            // Released by an administrator: these do not count against the deletes after them.
            self.space.forget_deletes(&cfg.name).await?;
        }
        Ok(RunOutcome::Succeeded)
    }

    /// Every include OU must exist before anything is read: one renamed or moved away would make
    /// a delta see nothing and a full import fail with "no such object", and the admin would not
    /// know why. Each OU's objectGUID / entryUUID is remembered (with the OUs, in the space) so
    /// that a missing one can be looked for by it.
    async fn check_roots(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
    ) -> Result<(), AgentError> {
        for root in &cfg.include_ous {
            match conn.read(root, &[root_id_attr(cfg)]).await {
                Ok(e) => {
                    if let Some(id) = root_id(cfg, &e) {
                        if self.space.container(&cfg.name, &id).await?.as_deref() != Some(&e.dn) {
                            self.space
                                .set_container(&cfg.name, &id, Some(&e.dn))
                                .await?;
                        }
                    }
                }
                Err(LdapError::NoSuchObject { .. }) => {
                    // Whatever the fix, a full import follows: a delta would not see the
                    // objects that moved with the OU (slapd reports nothing for them).
                    self.space.set_cookie(&cfg.name, None).await?;
                    return Err(self.root_missing(cfg, conn, root).await);
                }
                Err(e) => return Err(AgentError::ldap(&cfg.name)(e)),
            }
        }
        Ok(())
    }

    /// The error (and event `sync.scope.root_missing`) for the include OU `root` that no longer
    /// exists: where it went, found by the id remembered for it, else the OUs now beside it; and
    /// the command that updates the scope. Nothing of the run is exported.
    async fn root_missing(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
        root: &str,
    ) -> AgentError {
        let attr = root_id_attr(cfg);
        let id = self
            .space
            .container_at(&cfg.name, root)
            .await
            .ok()
            .flatten();
        let mut moved_to = None;
        if let Some(id) = &id {
            let found = match cfg.kind {
                DirectoryKind::Ad => {
                    match base64::Engine::decode(&base64::engine::general_purpose::STANDARD, id) {
                        Ok(guid) => conn
                            .ad_read_by_guid_matching(&guid, CONTAINER_FILTER, &["objectGUID"])
                            .await
                            .ok()
                            .flatten(),
                        Err(_) => None,
                    }
                }
                DirectoryKind::Openldap => conn
                    .search_paged(
                        &cfg.base_dn,
                        Scope::Subtree,
                        &format!("(entryUUID={id})"),
                        &["entryUUID"],
                        10,
                    )
                    .await
                    .ok()
                    .and_then(|v| v.into_iter().next()),
            };
            moved_to = found.map(|e| e.dn);
        }
        let parent = scope::parent_dn(root);
        let where_now = match &moved_to {
            Some(dn) => format!("the OU with its {attr} is now {dn}, so it was renamed or moved"),
            None => {
                let beside: Vec<String> = match &parent {
                    Some(p) => conn
                        .search_paged(p, Scope::OneLevel, CONTAINER_FILTER, &["objectClass"], 100)
                        .await
                        .map(|v| v.into_iter().map(|e| e.dn).collect())
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                match (&parent, beside.is_empty()) {
                    (Some(p), false) => format!(
                        "it was renamed, moved or deleted; the OUs now under {p} are: {}",
                        beside
                            .iter()
                            .take(10)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    _ => "it was renamed, moved or deleted".to_string(),
                }
            }
        };
        let new_roots: Vec<String> = cfg
            .include_ous
            .iter()
            .map(|o| {
                if scope::dn_key(o) == scope::dn_key(root) {
                    moved_to.clone().unwrap_or_else(|| "NEW-OU-DN".into())
                } else {
                    o.clone()
                }
            })
            .collect();
        let command = connector::add_command(
            &self.data_dir,
            &ConnectorConfig {
                include_ous: new_roots,
                ..cfg.clone()
            },
        );
        let message = format!(
            "connector {}: the include OU {root} no longer exists: {where_now}. Nothing was read, exported or deleted. Update the scope with: {command}",
            cfg.name
        );
        self.events.error(
            "sync.scope.root_missing",
            message.clone(),
            json!({ "connector": cfg.name, "root": root, "movedTo": moved_to, "id": id }),
        );
        AgentError::ScopeRootMissing(message)
    }

    /// Objects the cloud refused in an earlier run (a UPN suffix that was not a tenant domain
    /// yet, a duplicate UPN…) are not in the space as exported, so a delta, which only reads what
    /// changed, would never send them again: each is read again by DN and queued like a changed
    /// entry. One with nothing to send any more (gone, out of scope, back to what the cloud
    /// has) leaves the list. A full import needs none of this: it reads everything.
    async fn retry_refused(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
        run: &mut RunState,
    ) -> Result<(), AgentError> {
        let refused = self.space.refused(&cfg.name, &run.run_id).await?;
        if refused.is_empty() {
            return Ok(());
        }
        let attrs = map::attributes(cfg);
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let filter = cfg.object_filter();
        let has = |u: &[SyncObject], anchor: &str| u.iter().any(|o| o.anchor == anchor);
        for (anchor, dn) in refused {
            if has(&run.upserts, &anchor) {
                // The delta itself queued it again.
                continue;
            }
            let entry = match conn.read_matching(&dn, &filter, &attrs).await {
                Ok(e) => e,
                Err(LdapError::NoSuchObject { .. }) => None,
                Err(e) => return Err(AgentError::ldap(&cfg.name)(e)),
            };
            let mut queued = false;
            if let Some(entry) = entry {
                self.process(cfg, conn, &entry, run, false).await?;
                queued = has(&run.upserts, &anchor)
                    || run
                        .in_flight
                        .as_ref()
                        .is_some_and(|f| has(&f.batch.upserts, &anchor));
            }
            if !queued {
                self.space
                    .forget_refused(&cfg.name, &anchor, &run.run_id)
                    .await?;
            }
        }
        Ok(())
    }

    /// Sends what is pending: with `all`, everything (deletes included) and then commits
    /// `cookie`; otherwise only full batches of upserts.
    async fn flush(
        &mut self,
        cfg: &ConnectorConfig,
        run: &mut RunState,
        all: bool,
        cookie: Option<&[u8]>,
    ) -> Result<(), AgentError> {
        if run.staging {
            run.upserts.clear();
            run.pending_members = 0;
            return Ok(());
        }
        loop {
            // Called after every object read: nothing to send yet is told from the counts, not
            // from a walk of the pending objects.
            if !all
                && run.upserts.len() < run.batch_limit
                && run.pending_members <= MAX_BATCH_MEMBERS
            {
                break;
            }
            let total = run.upserts.len() + run.pending_delete_list.len();
            let (n, full) = next_batch(&run.upserts, run.batch_limit);
            if total == 0 || (!all && !full) {
                break;
            }
            let mut upserts: Vec<SyncObject> = Vec::with_capacity(n);
            upserts.extend(run.upserts.drain(..n));
            run.pending_members -= upserts.iter().map(|o| o.members.len()).sum::<usize>();
            // Users first: a group may name a user of the same batch as a member.
            upserts.sort_by_key(|o| o.kind == ObjectKind::Group);
            let mut deletes = Vec::new();
            if all {
                let room = run.batch_limit.saturating_sub(upserts.len());
                let n = run.pending_delete_list.len().min(room);
                deletes.extend(run.pending_delete_list.drain(..n));
            }
            let last = all && run.upserts.is_empty() && run.pending_delete_list.is_empty();
            let batch = SyncBatch {
                run_id: run.run_id.clone(),
                seq: run.seq,
                upserts,
                deletes,
            };
            run.seq += 1;
            self.send(cfg, run, batch, if last { cookie } else { None })
                .await?;
            if last {
                return self.finish_send(cfg, run).await;
            }
        }
        if all {
            self.finish_send(cfg, run).await?;
            if let Some(c) = cookie {
                self.space.set_cookie(&cfg.name, Some(c)).await?;
            }
        }
        Ok(())
    }

    /// Records `batch` and sends it once the batch before has its answer; the cloud applies it
    /// while the import reads and maps the next entries. At most one batch is in flight (sent,
    /// not answered): the one before gets its answer first, and is committed here after `batch`
    /// is on its way, so the cloud does not wait for this side's commit (docs/sync.md, "The next
    /// batch is recorded while the cloud applies the one before").
    async fn send(
        &mut self,
        cfg: &ConnectorConfig,
        run: &mut RunState,
        batch: SyncBatch,
        cookie: Option<&[u8]>,
    ) -> Result<(), AgentError> {
        // Encoded once: the same bytes are the in-flight record and the request body.
        let json = encode(&batch)?;
        self.space
            .set_inflight(&cfg.name, &batch.run_id, batch.seq, &json)
            .await?;
        let answered = match self.answer(run).await {
            Ok(a) => a,
            Err(e) => {
                // Not sent: nothing of it can have been applied.
                self.space
                    .forget_inflight(&cfg.name, &batch.run_id, batch.seq)
                    .await?;
                return Err(e);
            }
        };
        let link = self.link.clone();
        let task = tokio::spawn(async move { link.send_batch(json).await });
        run.in_flight = Some(InFlight {
            batch,
            cookie: cookie.map(<[u8]>::to_vec),
            task,
        });
        if self.hooks.fail_with_two_batches_in_flight && answered.is_some() {
            if let Some(f) = run.in_flight.take() {
                let _ = f.task.await;
            }
            return Err(AgentError::Interrupted(
                "test hook: stopped with two batches in flight".into(),
            ));
        }
        match answered {
            Some((sent, result)) => self.commit(cfg, run, sent, result).await,
            None => Ok(()),
        }
    }

    /// Waits for the cloud's answer to the batch in flight, if any, and commits it here (space
    /// rows, cookie).
    async fn finish_send(
        &mut self,
        cfg: &ConnectorConfig,
        run: &mut RunState,
    ) -> Result<(), AgentError> {
        match self.answer(run).await? {
            Some((sent, result)) => self.commit(cfg, run, sent, result).await,
            None => Ok(()),
        }
    }

    /// The cloud's answer to the batch in flight, if any. A batch refused as a whole was not
    /// applied, so its record is cleared (nothing to replay); after a transient failure it stays
    /// recorded, to replay.
    async fn answer(
        &mut self,
        run: &mut RunState,
    ) -> Result<Option<(InFlight, BatchResult)>, AgentError> {
        let Some(mut sent) = run.in_flight.take() else {
            return Ok(None);
        };
        let answer = (&mut sent.task).await.map_err(|e| {
            AgentError::Interrupted(format!(
                "sending batch {} of run {} stopped: {e}",
                sent.batch.seq, sent.batch.run_id
            ))
        })?;
        let result = match answer {
            Ok(r) => r,
            Err(e) => {
                if !e.is_transient() {
                    let empty = SyncBatch {
                        upserts: vec![],
                        deletes: vec![],
                        ..sent.batch
                    };
                    self.space
                        .commit_batch(&run.connector, &empty, None)
                        .await?;
                }
                return Err(e.into());
            }
        };
        if self.hooks.fail_after_accepted_batch {
            return Err(AgentError::Interrupted(format!(
                "test hook: stopped after batch {} of run {} was accepted",
                sent.batch.seq, sent.batch.run_id
            )));
        }
        Ok(Some((sent, result)))
    }

    /// Writes an answered batch into the connector space (rows, refused list, cookie) and
    /// clears its in-flight record.
    async fn commit(
        &mut self,
        cfg: &ConnectorConfig,
        run: &mut RunState,
        sent: InFlight,
        result: BatchResult,
    ) -> Result<(), AgentError> {
        let InFlight { batch, cookie, .. } = sent;
        self.space
            .commit_answer(&cfg.name, &batch, &result.errors, cookie.as_deref())
            .await?;
        for a in &batch.deletes {
            self.space.unindex(&cfg.name, a).await?;
        }
        run.count(&result, &self.events);
        run.batch_limit = batch_limit(&result);
        run.exported += (batch.upserts.len() + batch.deletes.len()) as u64;
        run.report("export");
        Ok(())
    }

    /// Maps one entry read from the directory and queues what differs from the space.
    async fn process(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
        entry: &Entry,
        run: &mut RunState,
        full: bool,
    ) -> Result<(), AgentError> {
        run.read += 1;
        if run.read.is_multiple_of(100) {
            run.report("import");
        }
        // Out of scope first: what is not synced is not checked either.
        let mapped = if scope::in_scope(cfg, &entry.dn) {
            map::map_entry(cfg, entry)
        } else {
            Ok(Mapped::Skipped("outside the scope"))
        };
        let anchor = map::anchor_of(cfg, entry).ok();
        match mapped {
            Ok(Mapped::Object(m)) => {
                let anchor = m.object.anchor.clone();
                self.space.index_dn(&cfg.name, &entry.dn, &anchor).await?;
                if full {
                    self.space
                        .mark_seen(&cfg.name, &anchor, &run.run_id)
                        .await?;
                }
                let object = self
                    .resolve_members(cfg, conn, *m, &PageIndex::default())
                    .await?;
                run.deletes.remove(&anchor);
                let existing = self.space.get(&cfg.name, &anchor).await?;
                match diff::diff(existing.as_ref().map(|e| e.hash.as_str()), &object) {
                    diff::Change::Unchanged => {}
                    diff::Change::Update => {
                        run.would_update += 1;
                        run.queue(object);
                    }
                    diff::Change::Add => {
                        run.would_add += 1;
                        run.queue(object);
                    }
                }
                self.flush(cfg, run, false, None).await?;
            }
            Ok(_) => {
                // Not (or no longer) something to sync: gone from the cloud if it was there.
                if let Some(a) = anchor {
                    self.space.unindex(&cfg.name, &a).await?;
                    if self.space.get(&cfg.name, &a).await?.is_some() {
                        run.deletes.insert(a);
                    }
                }
            }
            Err(e) => {
                run.errors += 1;
                if let (Some(a), true) = (&anchor, full) {
                    // Keep what the cloud has; do not delete it for a bad value.
                    self.space.mark_seen(&cfg.name, a, &run.run_id).await?;
                }
                self.events.warn(
                    "sync.object.invalid",
                    format!("skipped: {e}"),
                    json!({ "connector": cfg.name, "dn": entry.dn }),
                );
            }
        }
        Ok(())
    }

    /// A page of a full import: what [`Engine::process`] does for each entry, with the
    /// connector space read once for the page (stored hashes, member anchors) and the page's DN
    /// index and seen marks written at its end, in one transaction. A page where two entries
    /// share an anchor goes entry by entry, so the order of their writes stays exact.
    async fn process_page(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
        entries: &[Entry],
        run: &mut RunState,
    ) -> Result<(), AgentError> {
        let items: Vec<_> = entries
            .iter()
            .map(|entry| {
                // Out of scope first: what is not synced is not checked either.
                let mapped = if scope::in_scope(cfg, &entry.dn) {
                    map::map_entry(cfg, entry)
                } else {
                    Ok(Mapped::Skipped("outside the scope"))
                };
                (mapped, map::anchor_of(cfg, entry).ok())
            })
            .collect();
        let anchors: Vec<String> = items
            .iter()
            .filter_map(|(mapped, anchor)| match mapped {
                Ok(Mapped::Object(m)) => Some(m.object.anchor.clone()),
                _ => anchor.clone(),
            })
            .collect();
        if anchors.iter().collect::<HashSet<_>>().len() != anchors.len() {
            for e in entries {
                self.process(cfg, conn, e, run, true).await?;
            }
            return Ok(());
        }
        let stored = self.space.hashes(&cfg.name, &anchors).await?;
        let mut writes = PageWrites::default();
        let mut page = PageIndex::default();
        for (entry, (mapped, anchor)) in entries.iter().zip(items) {
            run.read += 1;
            if run.read.is_multiple_of(100) {
                run.report("import");
            }
            match mapped {
                Ok(Mapped::Object(m)) => {
                    let anchor = m.object.anchor.clone();
                    page.index(&entry.dn, &anchor);
                    writes.index.push((entry.dn.clone(), anchor.clone()));
                    writes.seen.push(anchor.clone());
                    let object = self.resolve_members(cfg, conn, *m, &page).await?;
                    run.deletes.remove(&anchor);
                    match diff::diff(stored.get(&anchor).map(String::as_str), &object) {
                        diff::Change::Unchanged => {}
                        diff::Change::Update => {
                            run.would_update += 1;
                            run.queue(object);
                        }
                        diff::Change::Add => {
                            run.would_add += 1;
                            run.queue(object);
                        }
                    }
                    self.flush(cfg, run, false, None).await?;
                }
                Ok(_) => {
                    // Not (or no longer) something to sync: gone from the cloud if it was there.
                    if let Some(a) = anchor {
                        page.unindex(&a);
                        writes.unindex.push(a.clone());
                        if stored.contains_key(&a) {
                            run.deletes.insert(a);
                        }
                    }
                }
                Err(e) => {
                    run.errors += 1;
                    if let Some(a) = anchor {
                        // Keep what the cloud has; do not delete it for a bad value.
                        writes.seen.push(a);
                    }
                    self.events.warn(
                        "sync.object.invalid",
                        format!("skipped: {e}"),
                        json!({ "connector": cfg.name, "dn": entry.dn }),
                    );
                }
            }
        }
        self.space.apply_page(&cfg.name, &run.run_id, &writes).await
    }

    /// Member DNs → anchors of members in scope (read from the directory when not yet known).
    /// The DN index is read once for all members; `page` holds what the current page indexed
    /// and has not written yet.
    async fn resolve_members(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
        m: MappedObject,
        page: &PageIndex,
    ) -> Result<SyncObject, AgentError> {
        let mut object = m.object;
        let mut members = BTreeSet::new();
        let dns: Vec<String> = m
            .member_dns
            .into_iter()
            .filter(|dn| scope::in_scope(cfg, dn))
            .collect();
        if dns.is_empty() {
            object.members = Vec::new();
            return Ok(object);
        }
        let stored = self.space.anchors_at(&cfg.name, &dns).await?;
        // Read from the directory by this call (a DN listed twice is read once).
        let mut read: HashMap<String, String> = HashMap::new();
        let attrs = map::attributes(cfg);
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        for dn in dns {
            let key = scope::dn_key(&dn);
            if let Some(a) = read
                .get(&key)
                .or_else(|| page.anchor_at(&key, stored.get(&key)))
            {
                members.insert(a.clone());
                continue;
            }
            let entry = match conn.read(&dn, &attrs).await {
                Ok(e) => e,
                Err(LdapError::NoSuchObject { .. }) => continue,
                Err(e) => return Err(AgentError::ldap(&cfg.name)(e)),
            };
            if let Ok(Mapped::Object(mo)) = map::map_entry(cfg, &entry) {
                self.space
                    .index_dn(&cfg.name, &entry.dn, &mo.object.anchor)
                    .await?;
                read.insert(scope::dn_key(&entry.dn), mo.object.anchor.clone());
                read.insert(key, mo.object.anchor.clone());
                members.insert(mo.object.anchor);
            }
        }
        object.members = members.into_iter().collect();
        Ok(object)
    }

    async fn ad_full(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
        run: &mut RunState,
    ) -> Result<Vec<u8>, AgentError> {
        let ldap_err = AgentError::ldap;
        // The watermark first: whatever changes during the import is seen again by the next delta.
        let cookie = ad_current_cookie(cfg, conn).await?;
        // OUs and containers, to notice later when one moves (its objects move with it).
        let mut page_cookie = Vec::new();
        loop {
            let (entries, next) = conn
                .search_page(
                    &cfg.base_dn,
                    Scope::Subtree,
                    CONTAINER_FILTER,
                    &["objectGUID"],
                    PAGE_SIZE,
                    &page_cookie,
                )
                .await
                .map_err(ldap_err(&cfg.name))?;
            for e in entries {
                if let Some(g) = e.values("objectGUID").first() {
                    self.space
                        .set_container(&cfg.name, &map::anchor_from_bytes(g), Some(&e.dn))
                        .await?;
                }
            }
            if next.is_empty() {
                break;
            }
            page_cookie = next;
        }
        self.paged_import(cfg, conn, run).await?;
        Ok(cookie)
    }

    /// Paged search of users, then groups, below each root, page by page.
    async fn paged_import(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
        run: &mut RunState,
    ) -> Result<(), AgentError> {
        let attrs = map::attributes(cfg);
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        for filter in [cfg.user_filter(), cfg.group_filter()] {
            for root in cfg.roots() {
                let mut page_cookie = Vec::new();
                loop {
                    let (entries, next) = conn
                        .search_page(
                            &root,
                            Scope::Subtree,
                            &filter,
                            &attrs,
                            PAGE_SIZE,
                            &page_cookie,
                        )
                        .await
                        .map_err(AgentError::ldap(&cfg.name))?;
                    self.process_page(cfg, conn, &entries, run).await?;
                    if next.is_empty() {
                        break;
                    }
                    page_cookie = next;
                }
            }
        }
        Ok(())
    }

    async fn ad_delta(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
        cookie: &[u8],
        run: &mut RunState,
    ) -> Result<DeltaOutcome, AgentError> {
        let attrs = map::attributes(cfg);
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        // DirSync reports an object only when a requested attribute changed: a move or rename
        // changes `name` / `parentGUID`, a delete `isDeleted`.
        let mut dirsync_attrs = attrs.clone();
        dirsync_attrs.extend(["name", "parentGUID", "isDeleted"]);
        let mut cookie = cookie.to_vec();
        let mut done: HashSet<Vec<u8>> = HashSet::new();
        let mut needs_full: Option<String> = None;
        let read_filter = format!(
            "(|{CONTAINER_FILTER}{}{})",
            cfg.user_filter(),
            cfg.group_filter()
        );
        loop {
            let page = conn
                .ad_dirsync(&cfg.base_dn, DIRSYNC_FILTER, &dirsync_attrs, &cookie)
                .await
                .map_err(AgentError::ldap(&cfg.name))?;
            for e in &page.entries {
                let Some(guid) = e.values("objectGUID").first().cloned() else {
                    continue;
                };
                if !done.insert(guid.clone()) {
                    continue;
                }
                let guid_b64 = map::anchor_from_bytes(&guid);
                let deleted = e
                    .text("isDeleted")
                    .is_some_and(|v| v.eq_ignore_ascii_case("TRUE"));
                let current = if deleted {
                    None
                } else {
                    match conn
                        .ad_read_by_guid_matching(&guid, &read_filter, &attrs)
                        .await
                    {
                        Ok(x) => x,
                        Err(LdapError::NoSuchObject { .. }) => None,
                        Err(e) => return Err(AgentError::ldap(&cfg.name)(e)),
                    }
                };
                let Some(entry) = current else {
                    // Deleted, or no longer a user/group matching the filter.
                    if let Some(old) = self.space.container(&cfg.name, &guid_b64).await? {
                        self.space.set_container(&cfg.name, &guid_b64, None).await?;
                        if scope::affects_scope(cfg, &old) {
                            needs_full.get_or_insert(format!("the OU {old} was deleted"));
                        }
                    }
                    if cfg.anchor_attr().eq_ignore_ascii_case("objectGUID")
                        && self.space.get(&cfg.name, &guid_b64).await?.is_some()
                    {
                        run.deletes.insert(guid_b64.clone());
                        self.space.unindex(&cfg.name, &guid_b64).await?;
                    } else if !cfg.anchor_attr().eq_ignore_ascii_case("objectGUID") {
                        needs_full.get_or_insert(
                            "an object was deleted and the anchor is not the objectGUID".into(),
                        );
                    }
                    continue;
                };
                if is_container(&entry) {
                    let old = self.space.container(&cfg.name, &guid_b64).await?;
                    self.space
                        .set_container(&cfg.name, &guid_b64, Some(&entry.dn))
                        .await?;
                    if let Some(old) = old {
                        if scope::dn_key(&old) != scope::dn_key(&entry.dn)
                            && (scope::affects_scope(cfg, &old)
                                || scope::affects_scope(cfg, &entry.dn))
                        {
                            needs_full.get_or_insert(format!("the OU {old} moved to {}", entry.dn));
                        }
                    }
                    continue;
                }
                self.process(cfg, conn, &entry, run, false).await?;
            }
            cookie = page.cookie;
            if !page.more {
                break;
            }
        }
        Ok(match needs_full {
            Some(why) => DeltaOutcome::NeedsFull(Some(cookie), why),
            None => DeltaOutcome::Done(cookie),
        })
    }

    async fn openldap_full(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
        run: &mut RunState,
    ) -> Result<Vec<u8>, AgentError> {
        let attrs = map::attributes(cfg);
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        // The cookie first (a refresh that matches nothing), then the paged import.
        let r = conn
            .openldap_sync_refresh(&cfg.base_dn, NOTHING_FILTER, &["entryUUID"], None)
            .await
            .map_err(AgentError::ldap(&cfg.name))?;
        let cookie = r.cookie.unwrap_or_default();
        let _ = attrs;
        self.paged_import(cfg, conn, run).await?;
        Ok(cookie)
    }

    async fn openldap_delta(
        &mut self,
        cfg: &ConnectorConfig,
        conn: &mut Connection,
        cookie: &[u8],
        run: &mut RunState,
    ) -> Result<DeltaOutcome, AgentError> {
        let attrs = map::attributes(cfg);
        let attrs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let r = conn
            .openldap_sync_refresh(&cfg.base_dn, &cfg.object_filter(), &attrs, Some(cookie))
            .await
            .map_err(AgentError::ldap(&cfg.name))?;
        let mut seen: HashSet<String> = HashSet::new();
        for c in &r.changes {
            seen.insert(map::anchor_from_bytes(&c.entry_uuid));
            self.process(cfg, conn, &c.entry, run, false).await?;
        }
        for uuid in &r.deleted {
            let a = map::anchor_from_bytes(uuid);
            if self.space.get(&cfg.name, &a).await?.is_some() {
                run.deletes.insert(a.clone());
            }
            self.space.unindex(&cfg.name, &a).await?;
        }
        if !r.refresh_deletes && !r.present.is_empty() {
            // A present phase: whatever was neither present nor changed is gone.
            seen.extend(r.present.iter().map(|u| map::anchor_from_bytes(u)));
            for a in self.space.anchors(&cfg.name).await? {
                if !seen.contains(&a) {
                    run.deletes.insert(a);
                }
            }
        }
        let cookie = r.cookie.unwrap_or_else(|| cookie.to_vec());
        Ok(DeltaOutcome::Done(cookie))
    }
}

const CONTAINER_FILTER: &str = "(|(objectClass=organizationalUnit)(objectClass=container))";
const DIRSYNC_FILTER: &str =
    "(|(objectClass=user)(objectClass=group)(objectClass=organizationalUnit)(objectClass=container))";
const NOTHING_FILTER: &str =
    "(&(objectClass=organizationalUnit)(!(objectClass=organizationalUnit)))";

/// The attribute that names an include OU for good: the one the anchors use.
fn root_id_attr(cfg: &ConnectorConfig) -> &'static str {
    match cfg.kind {
        DirectoryKind::Ad => "objectGUID",
        DirectoryKind::Openldap => "entryUUID",
    }
}

/// An include OU's id as the space keeps it: AD objectGUID in base64 (as for every OU),
/// OpenLDAP entryUUID as text (a filter value).
fn root_id(cfg: &ConnectorConfig, e: &Entry) -> Option<String> {
    match cfg.kind {
        DirectoryKind::Ad => e
            .values("objectGUID")
            .first()
            .map(|g| map::anchor_from_bytes(g)),
        DirectoryKind::Openldap => e.text("entryUUID").map(str::to_string),
    }
}

/// A batch as JSON, as it is sent and kept in flight.
fn encode(batch: &SyncBatch) -> Result<Vec<u8>, AgentError> {
    serde_json::to_vec(batch).map_err(|e| AgentError::Config(format!("encode a batch: {e}")))
}

/// How many of `pending` (from the front) the next batch takes — at most `limit` objects and
/// [`MAX_BATCH_MEMBERS`] member references, at least one object (a group larger than that goes
/// alone) — and whether that batch is full (else more may join it before it leaves).
fn next_batch(pending: &[SyncObject], limit: usize) -> (usize, bool) {
    let mut members = 0;
    for (i, o) in pending.iter().enumerate() {
        if i == limit {
            return (limit, true);
        }
        members += o.members.len();
        if members > MAX_BATCH_MEMBERS {
            return (i.max(1), true);
        }
    }
    (pending.len(), pending.len() >= limit)
}

/// The batch size the cloud's answer allows: [`MAX_BATCH_OBJECTS`] unless it says more, and
/// never more than [`BULK_BATCH_OBJECTS`].
fn batch_limit(answer: &BatchResult) -> usize {
    answer
        .max_batch_objects
        .map_or(MAX_BATCH_OBJECTS, |m| m as usize)
        .clamp(MAX_BATCH_OBJECTS, BULK_BATCH_OBJECTS)
}

/// `secs` for a person: "1 h", "90 min", "45 s".
fn duration_words(secs: u32) -> String {
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn is_container(e: &Entry) -> bool {
    e.values("objectClass").iter().any(|v| {
        v.eq_ignore_ascii_case(b"organizationalUnit") || v.eq_ignore_ascii_case(b"container")
    }) && !e
        .values("objectClass")
        .iter()
        .any(|v| v.eq_ignore_ascii_case(b"user") || v.eq_ignore_ascii_case(b"group"))
}

/// The current DirSync watermark, without reading objects (a filter nothing matches).
async fn ad_current_cookie(
    cfg: &ConnectorConfig,
    conn: &mut Connection,
) -> Result<Vec<u8>, AgentError> {
    let mut cookie = Vec::new();
    loop {
        let page = conn
            .ad_dirsync(&cfg.base_dn, NOTHING_FILTER, &["objectGUID"], &cookie)
            .await
            .map_err(AgentError::ldap(&cfg.name))?;
        cookie = page.cookie;
        if !page.more {
            return Ok(cookie);
        }
    }
}

/// The directory refused the cookie itself (not the connection, the account or the network).
fn cookie_refused(e: &LdapError) -> bool {
    !matches!(
        e,
        LdapError::Unreachable { .. }
            | LdapError::CertificateRejected { .. }
            | LdapError::Tls { .. }
            | LdapError::Timeout
            | LdapError::InvalidCredentials { .. }
            | LdapError::InsufficientAccess { .. }
            | LdapError::Unavailable { .. }
            | LdapError::Config(_)
    )
}

enum DeltaOutcome {
    Done(Vec<u8>),
    /// Something only a full import can settle (an OU moved); the delta's cookie.
    NeedsFull(Option<Vec<u8>>, String),
}

/// The state of one connector's run.
struct RunState {
    connector: String,
    run_id: String,
    seq: u32,
    kind: RunKind,
    staging: bool,
    upserts: Vec<SyncObject>,
    /// Member references of `upserts`.
    pending_members: usize,
    deletes: BTreeSet<String>,
    pending_delete_list: Vec<String>,
    added: u32,
    updated: u32,
    deleted: u32,
    errors: u32,
    pending_deletes: u32,
    would_add: u32,
    would_update: u32,
    read: u64,
    exported: u64,
    message: Option<String>,
    progress: Option<ProgressFn>,
    /// The batch sent and not yet answered.
    in_flight: Option<InFlight>,
    /// Most objects in the next batch: what every cloud takes until an answer says more.
    batch_limit: usize,
}

/// A batch on its way to the cloud, with the cookie to commit with it.
struct InFlight {
    batch: SyncBatch,
    cookie: Option<Vec<u8>>,
    task: tokio::task::JoinHandle<Result<BatchResult, crate::link::LinkError>>,
}

impl RunState {
    fn new(cfg: &ConnectorConfig, run_id: &str, staging: bool) -> RunState {
        RunState {
            connector: cfg.name.clone(),
            run_id: run_id.to_string(),
            seq: 0,
            kind: RunKind::Delta,
            staging,
            upserts: Vec::new(),
            pending_members: 0,
            deletes: BTreeSet::new(),
            pending_delete_list: Vec::new(),
            added: 0,
            updated: 0,
            deleted: 0,
            errors: 0,
            pending_deletes: 0,
            would_add: 0,
            would_update: 0,
            read: 0,
            exported: 0,
            message: None,
            progress: None,
            in_flight: None,
            batch_limit: MAX_BATCH_OBJECTS,
        }
    }

    /// Forgets what a failed delta queued (a full import follows).
    /// Queues an object to export.
    fn queue(&mut self, object: SyncObject) {
        self.pending_members += object.members.len();
        self.upserts.push(object);
    }

    fn reset(&mut self) {
        self.upserts.clear();
        self.pending_members = 0;
        self.deletes.clear();
        self.would_add = 0;
        self.would_update = 0;
    }

    fn count(&mut self, r: &BatchResult, events: &EventLog) {
        self.added += r.added;
        self.updated += r.updated;
        self.deleted += r.deleted;
        self.errors += r.errors.len() as u32;
        for e in &r.errors {
            events.warn(
                "sync.object.refused",
                format!(
                    "the cloud refused object {}: {} ({})",
                    e.anchor, e.message, e.code
                ),
                json!({ "connector": self.connector, "anchor": e.anchor, "code": e.code }),
            );
        }
    }

    fn report(&self, phase: &'static str) {
        if let Some(p) = &self.progress {
            p(&Progress {
                connector: self.connector.clone(),
                phase,
                read: self.read,
                exported: self.exported,
            });
        }
    }
}

/// The DN index as a page of a full import left it before its writes are applied: DNs the page
/// indexed, and anchors it indexed or unindexed (their older rows are gone).
#[derive(Default)]
struct PageIndex {
    by_key: HashMap<String, String>,
    moved: HashSet<String>,
}

impl PageIndex {
    fn index(&mut self, dn: &str, anchor: &str) {
        self.by_key.insert(scope::dn_key(dn), anchor.to_string());
        self.moved.insert(anchor.to_string());
    }

    fn unindex(&mut self, anchor: &str) {
        self.moved.insert(anchor.to_string());
    }

    /// The anchor at `key`, given what the stored index says (`stored`).
    fn anchor_at<'a>(&'a self, key: &str, stored: Option<&'a String>) -> Option<&'a String> {
        if let Some(a) = self.by_key.get(key) {
            return Some(a);
        }
        stored.filter(|a| !self.moved.contains(*a))
    }
}

#[cfg(test)]
mod page_index_tests {
    use super::PageIndex;

    #[test]
    fn a_page_overrides_the_stored_index_where_it_indexed_or_unindexed() {
        let mut page = PageIndex::default();
        page.index("CN=New,DC=x", "a");
        page.unindex("b");
        let stored_a = "a".to_string();
        let stored_b = "b".to_string();
        let stored_c = "c".to_string();
        // Indexed by the page, whatever the stored index says.
        assert_eq!(page.anchor_at("cn=new,dc=x", None), Some(&"a".to_string()));
        // `a` moved to CN=New: its old DN no longer answers.
        assert_eq!(page.anchor_at("cn=old,dc=x", Some(&stored_a)), None);
        // `b` left the index.
        assert_eq!(page.anchor_at("cn=b,dc=x", Some(&stored_b)), None);
        // Untouched by the page: the stored answer.
        assert_eq!(
            page.anchor_at("cn=c,dc=x", Some(&stored_c)),
            Some(&stored_c)
        );
        assert_eq!(page.anchor_at("cn=d,dc=x", None), None);
    }
}

#[cfg(test)]
mod batch_size_tests {
    use super::*;

    #[test]
    fn batches_hold_the_allowed_objects_and_a_bounded_number_of_members() {
        let obj = |members: usize| SyncObject {
            anchor: "a".into(),
            kind: if members > 0 {
                ObjectKind::Group
            } else {
                ObjectKind::User
            },
            attributes: Default::default(),
            members: vec!["m".into(); members],
        };
        let users: Vec<SyncObject> = (0..600).map(|_| obj(0)).collect();
        assert_eq!(next_batch(&users, MAX_BATCH_OBJECTS), (500, true));
        assert_eq!(next_batch(&users, BULK_BATCH_OBJECTS), (600, false));
        assert_eq!(next_batch(&users[..500], 500), (500, true));
        assert_eq!(next_batch(&[], 500), (0, false));
        // Members: the batch ends before the object that would pass the bound…
        let groups = vec![obj(60_000), obj(30_000), obj(20_000), obj(0)];
        assert_eq!(next_batch(&groups, BULK_BATCH_OBJECTS), (2, true));
        // …and a group larger than the bound goes alone.
        let huge = vec![obj(MAX_BATCH_MEMBERS + 1), obj(0)];
        assert_eq!(next_batch(&huge, BULK_BATCH_OBJECTS), (1, true));
        // The cloud's answer decides the size, within what this agent sends.
        let answer = |m: Option<u32>| BatchResult {
            max_batch_objects: m,
            ..Default::default()
        };
        assert_eq!(batch_limit(&answer(None)), MAX_BATCH_OBJECTS);
        assert_eq!(batch_limit(&answer(Some(2_000))), 2_000);
        assert_eq!(batch_limit(&answer(Some(1_000_000))), BULK_BATCH_OBJECTS);
        assert_eq!(batch_limit(&answer(Some(1))), MAX_BATCH_OBJECTS);
    }
}
