//! An agent host for tests through the binaries: `dirbridge agent register`, an AD connector on
//! a Samba's synced root, `agent sync run`, and `dirbridge agent run` as a child process
//! (stopped on drop).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use testkit::samba::Samba;

use super::{run_in, write_private, Cloud, Run};

pub fn agent_cmd(cloud: &Cloud, args: &[&str], stdin: Option<&str>) -> Run {
    run_in(&cloud.path().join("agent-host-config"), args, stdin)
}

/// An agent host: registered, with an AD connector on the Samba's synced root.
pub struct AgentHost {
    data: PathBuf,
    /// The agent host's CLI configuration directory (as [`agent_cmd`]).
    config: PathBuf,
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl AgentHost {
    pub fn register(cloud: &Cloud, samba: &Samba, name: &str) -> AgentHost {
        AgentHost::register_at(cloud, &cloud.url, samba, name)
    }

    /// As [`AgentHost::register`], the agent dialling the cloud at `url` (another instance of
    /// `cloud`'s database); the registration token comes from `cloud`.
    pub fn register_at(cloud: &Cloud, url: &str, samba: &Samba, name: &str) -> AgentHost {
        let host = cloud.path().join(name);
        std::fs::create_dir_all(&host).unwrap();
        let token = cloud.new_token();
        let token_file = host.join("token");
        write_private(&token_file, &token);
        let data = host.join("data");
        let d = data.to_str().unwrap().to_string();
        agent_cmd(
            cloud,
            &[
                "agent",
                "register",
                "--data-dir",
                &d,
                "--cloud",
                url,
                "--token-file",
                token_file.to_str().unwrap(),
                "--name",
                name,
            ],
            None,
        )
        .ok();
        let svc = samba.service_account(testkit::samba::ServiceAccount::Full);
        let pw = host.join("svc-password");
        write_private(&pw, &svc.password);
        agent_cmd(
            cloud,
            &[
                "agent",
                "connector",
                "add",
                "--data-dir",
                &d,
                "--name",
                "corp",
                "--kind",
                "ad",
                "--url",
                &samba.ldaps_url(),
                "--ca-file",
                samba.ca_cert_path().to_str().unwrap(),
                "--bind-dn",
                &svc.dn,
                "--base-dn",
                samba.base_dn(),
                "--include-ou",
                samba.synced_root(),
                "--password-file",
                pw.to_str().unwrap(),
            ],
            None,
        )
        .ok();
        AgentHost {
            log: host.join("agent.log"),
            config: cloud.path().join("agent-host-config"),
            data,
            name: name.to_string(),
            child: None,
        }
    }

    pub fn dir(&self) -> &str {
        self.data.to_str().unwrap()
    }

    /// One full sync (`agent sync run --full`), so the directory's users are in the cloud.
    pub fn full_sync(&self, cloud: &Cloud) {
        agent_cmd(
            cloud,
            &["agent", "sync", "run", "--data-dir", self.dir(), "--full"],
            None,
        )
        .ok();
    }

    /// One full sync, however it ends (no `Cloud` needed: the agent knows its cloud).
    pub fn full_sync_result(&self) -> Run {
        run_in(
            &self.config,
            &["agent", "sync", "run", "--data-dir", self.dir(), "--full"],
            None,
        )
    }

    pub fn enable_writeback(&self, cloud: &Cloud) -> Run {
        let pw = self.data.parent().unwrap().join("admin-password");
        write_private(&pw, super::ADMIN_PASSWORD);
        agent_cmd(
            cloud,
            &[
                "agent",
                "writeback",
                "enable",
                "--data-dir",
                self.dir(),
                "--admin",
                &cloud.admin,
                "--password-file",
                pw.to_str().unwrap(),
            ],
            None,
        )
    }

    pub fn start(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(super::bin())
            .args(["agent", "run", "--data-dir", self.dir()])
            .env("DIRBRIDGE_CONFIG_DIR", self.data.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dirbridge agent run");
        self.child = Some(child);
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let st = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(st.success(), "kill {sig} {pid}");
    }

    /// The agent's writeback events for `tracking_id` (`agent events --tracking-id`).
    pub fn events_for(&self, cloud: &Cloud, tracking_id: &str) -> Vec<Value> {
        let v = agent_cmd(
            cloud,
            &[
                "agent",
                "events",
                "--data-dir",
                self.dir(),
                "--tracking-id",
                tracking_id,
                "--output",
                "json",
            ],
            None,
        )
        .ok()
        .json();
        v.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for AgentHost {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
