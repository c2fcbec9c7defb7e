use proto::sync::{AgentSyncSettings, BatchResult, RunKind, RunOutcome, SyncRun};
use proto::{MemberKind, MemberRef, OnPremises, Source};
use store::{SyncErrorWrite, SyncWrite};

use crate::common::*;

fn settings() -> AgentSyncSettings {
    AgentSyncSettings {
        deletion_threshold: 50,
        deletion_window_secs: 600,
        allow_deletes_once: true,
        staging: true,
        delta_interval_secs: 30,
        full_interval_secs: 7200,
    }
}

fn run(agent: &str, id: &str, started: i64, outcome: RunOutcome) -> SyncRun {
    SyncRun {
        run_id: id.into(),
        agent_id: agent.into(),
        connector: "corp.example".into(),
        kind: RunKind::Delta,
        outcome,
        started_at: started,
        finished_at: Some(started + 5),
        added: 1,
        updated: 2,
        deleted: 3,
        errors: 0,
        pending_deletes: 0,
        message: None,
    }
}

store_test! {
    async fn sync_settings_are_absent_until_put_then_replaced(store) {
        let t = new_tenant(&store, "contoso").await;
        assert_eq!(store.get_sync_settings(&t.id).await.unwrap(), None);
        store.put_sync_settings(&t.id, &settings()).await.unwrap();
        assert_eq!(store.get_sync_settings(&t.id).await.unwrap(), Some(settings()));
        let changed = AgentSyncSettings { staging: false, ..settings() };
        store.put_sync_settings(&t.id, &changed).await.unwrap();
        assert_eq!(store.get_sync_settings(&t.id).await.unwrap(), Some(changed));
        assert_not_found(store.put_sync_settings("no-tenant", &settings()).await);
    }
}

store_test! {
    async fn runs_are_listed_newest_first_and_a_report_replaces_the_earlier_one(store) {
        let t = new_tenant(&store, "contoso").await;
        let agent_rec = store::AgentRecord {
            id: "agent-1".into(), tenant_id: t.id.clone(), name: "dc01".into(), version: "1".into(),
            signing_public_key: "k".into(), sealing_public_key: "k".into(), registered_at: T0,
            revoked_at: None, last_heartbeat_at: None, status: None, last_run_outcome: None, last_run_message: None,
        };
        store.insert_agent(&agent_rec).await.unwrap();
        store.record_sync_run(&t.id, &run("agent-1", "r1", T0, RunOutcome::Running)).await.unwrap();
        store.record_sync_run(&t.id, &run("agent-1", "r2", T0 + 60, RunOutcome::Succeeded)).await.unwrap();
        store.record_sync_run(&t.id, &run("agent-1", "r1", T0, RunOutcome::Failed)).await.unwrap();
        let runs = store.list_sync_runs(&t.id, 10).await.unwrap();
        assert_eq!(runs.iter().map(|r| r.run.run_id.as_str()).collect::<Vec<_>>(), ["r2", "r1"]);
        assert_eq!(runs[1].run.outcome, RunOutcome::Failed);
        assert_eq!(runs[1].runs, 1);
        assert_eq!(store.list_sync_runs(&t.id, 1).await.unwrap().len(), 1);
        assert_eq!(store.get_agent("agent-1").await.unwrap().unwrap().last_run_outcome, Some(RunOutcome::Failed));
    }
}

store_test! {
    async fn consecutive_delta_runs_that_changed_nothing_are_one_line_with_a_count(store) {
        let t = new_tenant(&store, "contoso").await;
        let agent_rec = store::AgentRecord {
            id: "agent-1".into(), tenant_id: t.id.clone(), name: "dc01".into(), version: "1".into(),
            signing_public_key: "k".into(), sealing_public_key: "k".into(), registered_at: T0,
            revoked_at: None, last_heartbeat_at: None, status: None, last_run_outcome: None, last_run_message: None,
        };
        store.insert_agent(&agent_rec).await.unwrap();
        let empty = |id: &str, at: i64, connector: &str| SyncRun {
            added: 0, updated: 0, deleted: 0, connector: connector.into(),
            ..run("agent-1", id, at, RunOutcome::Succeeded)
        };
        store.record_sync_run(&t.id, &run("agent-1", "busy", T0, RunOutcome::Succeeded)).await.unwrap();
        for i in 1..=4 {
            // Each run is first reported running, then finished, as the agent does.
            let mut r = empty(&format!("e{i}"), T0 + 15 * i, "corp.example");
            r.outcome = RunOutcome::Running;
            store.record_sync_run(&t.id, &r).await.unwrap();
            store.record_sync_run(&t.id, &empty(&format!("e{i}"), T0 + 15 * i, "corp.example")).await.unwrap();
            // Another connector's empty runs interleave and coalesce on their own.
            store.record_sync_run(&t.id, &empty(&format!("o{i}"), T0 + 15 * i + 1, "other")).await.unwrap();
        }
        let runs = store.list_sync_runs(&t.id, 10).await.unwrap();
        let lines: Vec<(&str, u32, Option<i64>)> =
            runs.iter().map(|r| (r.run.run_id.as_str(), r.runs, r.first_started_at)).collect();
        assert_eq!(lines, [("o4", 4, Some(T0 + 16)), ("e4", 4, Some(T0 + 15)), ("busy", 1, None)]);
        // A run that changed something starts a new line; the next empty one is a line again.
        store.record_sync_run(&t.id, &run("agent-1", "busy2", T0 + 100, RunOutcome::Succeeded)).await.unwrap();
        store.record_sync_run(&t.id, &empty("e5", T0 + 115, "corp.example")).await.unwrap();
        let runs = store.list_sync_runs(&t.id, 2).await.unwrap();
        assert_eq!(runs[0].run.run_id, "e5");
        assert_eq!((runs[0].runs, runs[0].first_started_at), (1, None));
        assert_eq!(runs[1].run.run_id, "busy2");
    }
}

store_test! {
    async fn a_batch_is_written_at_once_and_a_replay_returns_the_first_answer(store) {
        let t = new_tenant(&store, "contoso").await;
        let cloud_user = new_user(&store, &t, "carol@contoso.dirbridge.test").await;
        let mut ada = synced_user(&t, "ada@contoso.dirbridge.test", "QUFBQQ==");
        ada.roles = vec![];
        let mut g = group(&t, "Engineering");
        g.source = Source::OnPremises;
        g.on_premises = Some(OnPremises {
            immutable_id: "R1JQ".into(), distinguished_name: None, sam_account_name: None,
            last_sync_at: Some(T0), owned_attributes: vec!["displayName".into()],
        });
        let mut linked = cloud_user.clone();
        linked.source = Source::OnPremises;
        linked.on_premises = Some(OnPremises {
            immutable_id: "Q0FST0w=".into(), distinguished_name: None, sam_account_name: None,
            last_sync_at: Some(T0), owned_attributes: vec![],
        });
        let result = BatchResult { added: 2, updated: 1, ..Default::default() };
        let w = SyncWrite {
            tenant_id: t.id.clone(), agent_id: "agent-1".into(), run_id: "run-1".into(), seq: 0, now: T0,
            result: result.clone(),
            insert_users: vec![ada.clone()],
            update_users: vec![linked.clone()],
            insert_groups: vec![g.clone()],
            set_members: vec![(g.id.clone(), vec![
                MemberRef { kind: MemberKind::User, id: ada.id.clone() },
                MemberRef { kind: MemberKind::User, id: linked.id.clone() },
            ])],
            errors: vec![SyncErrorWrite { anchor: "QkFE".into(), distinguished_name: Some("CN=bad".into()), code: "invalidUpn".into(), message: "bad".into() }],
            ..Default::default()
        };
        assert_eq!(store.apply_sync_batch(&w).await.unwrap(), None);
        assert_eq!(store.batch_result("agent-1", "run-1", 0).await.unwrap(), Some(result.clone()));
        assert_eq!(store.get_user_by_immutable_id(&t.id, "QUFBQQ==").await.unwrap().unwrap().id, ada.id);
        assert_eq!(store.get_user(&t.id, &cloud_user.id).await.unwrap().unwrap().source, Source::OnPremises);
        assert_eq!(store.list_members(&t.id, &g.id).await.unwrap().len(), 2);
        let errors = store.list_sync_errors(&t.id).await.unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!((errors[0].code.as_str(), errors[0].first_seen_at), ("invalidUpn", T0));

        // Replay: the first answer, nothing applied again (an insert would clash).
        let again = SyncWrite { result: BatchResult::default(), ..w.clone() };
        assert_eq!(store.apply_sync_batch(&again).await.unwrap(), Some(result));

        // The snapshot finds objects by anchor, UPN and mail, with the groups' members.
        let snap = store.sync_snapshot(&t.id, &["QUFBQQ==".into(), "R1JQ".into()], &["CAROL@contoso.dirbridge.test".into()], &["ADA@contoso.dirbridge.test".into()]).await.unwrap();
        assert_eq!(snap.users.len(), 2);
        assert_eq!(snap.groups.len(), 1);
        assert_eq!(snap.memberships.len(), 2);

        // Next batch: the error repeats (first seen kept), then clears; deletes remove.
        let w2 = SyncWrite {
            tenant_id: t.id.clone(), agent_id: "agent-1".into(), run_id: "run-1".into(), seq: 1, now: T0 + 10,
            errors: vec![SyncErrorWrite { anchor: "QkFE".into(), distinguished_name: None, code: "invalidUpn".into(), message: "still bad".into() }],
            delete_users: vec![ada.id.clone()],
            ..Default::default()
        };
        store.apply_sync_batch(&w2).await.unwrap();
        let errors = store.list_sync_errors(&t.id).await.unwrap();
        assert_eq!((errors[0].first_seen_at, errors[0].last_seen_at, errors[0].message.as_str()), (T0, T0 + 10, "still bad"));
        assert_eq!(store.get_user(&t.id, &ada.id).await.unwrap(), None);
        assert_eq!(store.list_members(&t.id, &g.id).await.unwrap().len(), 1);
        let w3 = SyncWrite {
            tenant_id: t.id.clone(), agent_id: "agent-1".into(), run_id: "run-1".into(), seq: 2, now: T0 + 20,
            cleared: vec!["QkFE".into()],
            forget_batches_before: T0 + 15, delete_groups: vec![g.id.clone()],
            ..Default::default()
        };
        store.apply_sync_batch(&w3).await.unwrap();
        assert!(store.list_sync_errors(&t.id).await.unwrap().is_empty());
        assert_eq!(store.get_group(&t.id, &g.id).await.unwrap(), None);
        // Answers older than the replay window are forgotten; the newest stays.
        assert_eq!(store.batch_result("agent-1", "run-1", 0).await.unwrap(), None);
        assert_eq!(store.batch_result("agent-1", "run-1", 1).await.unwrap(), None);
        assert!(store.batch_result("agent-1", "run-1", 2).await.unwrap().is_some());
    }
}

store_test! {
    async fn a_batch_that_breaks_a_uniqueness_rule_writes_nothing(store) {
        let t = new_tenant(&store, "contoso").await;
        let existing = new_user(&store, &t, "ada@contoso.dirbridge.test").await;
        let clash = synced_user(&t, &existing.user_principal_name, "QUFBQQ==");
        let w = SyncWrite {
            tenant_id: t.id.clone(), agent_id: "agent-1".into(), run_id: "r".into(), seq: 0, now: T0,
            insert_users: vec![clash],
            errors: vec![SyncErrorWrite { anchor: "x".into(), distinguished_name: None, code: "c".into(), message: "m".into() }],
            ..Default::default()
        };
        assert!(matches!(store.apply_sync_batch(&w).await, Err(store::StoreError::Conflict(_))));
        assert_eq!(store.batch_result("agent-1", "r", 0).await.unwrap(), None);
        assert!(store.list_sync_errors(&t.id).await.unwrap().is_empty());
    }
}
