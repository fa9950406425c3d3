//! Application commands (`spyglass ctl app NAME [ARGS...]`): sent to every
//! worker of the pool (or the one named), each worker's reply gathered
//! under its pid, answered to the asking client when all have replied, a
//! worker has exited, or [`REPLY_TIMEOUT_MS`] has passed. The master never
//! waits for a worker: replies arrive through its loop like everything
//! else.

use nix::unistd::Pid;
use serde_json::json;

use super::Master;
use crate::channel::ToWorker;
use crate::control::{CLIENT_TIMEOUT_MS, ClientId};
use crate::scoreboard::now_ms;

/// How long workers have to reply (within the client's own patience).
pub(super) const REPLY_TIMEOUT_MS: u64 = CLIENT_TIMEOUT_MS - 1000;

/// A command out to workers, and what came back.
pub(super) struct Query {
    client: ClientId,
    id: u32,
    name: String,
    waiting: Vec<Pid>,
    replies: Vec<serde_json::Value>,
    pub deadline: u64,
}

impl Master<'_> {
    /// Send an application command to the workers; the client is answered
    /// later ([`Master::reply_from`]). An error is the answer at once.
    pub(super) fn ask_workers(
        &mut self,
        client: ClientId,
        name: String,
        args: Vec<String>,
        only: Option<i32>,
    ) -> Result<(), String> {
        let id = self.next_query;
        self.next_query = self.next_query.wrapping_add(1).max(1);
        let targets: Vec<usize> = self
            .workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.slot.is_some() && w.booted && !w.stopping)
            .filter(|(_, w)| only.is_none_or(|p| w.pid.as_raw() == p))
            .map(|(i, _)| i)
            .collect();
        if targets.is_empty() {
            return Err(match only {
                Some(p) => format!("no serving worker {p}"),
                None => "no serving worker".into(),
            });
        }
        let mut query = Query {
            client,
            id,
            name: name.clone(),
            waiting: Vec::new(),
            replies: Vec::new(),
            deadline: now_ms() + REPLY_TIMEOUT_MS,
        };
        let message = ToWorker::Command { id, name, args };
        for i in targets {
            let w = &self.workers[i];
            match w.channel.send_to_worker(&message) {
                Ok(()) => query.waiting.push(w.pid),
                Err(e) => query
                    .replies
                    .push(reply(w.pid, false, &format!("cannot reach it: {e}"))),
            }
        }
        self.queries.push(query);
        self.answer_complete();
        Ok(())
    }

    /// A worker's reply.
    pub(super) fn reply_from(&mut self, pid: Pid, id: u32, ok: bool, text: String) {
        if let Some(q) = self.queries.iter_mut().find(|q| q.id == id) {
            if let Some(at) = q.waiting.iter().position(|p| *p == pid) {
                q.waiting.swap_remove(at);
                q.replies.push(reply(pid, ok, &text));
            }
        }
        self.answer_complete();
    }

    /// A worker exited: it will not reply.
    pub(super) fn forget_in_queries(&mut self, pid: Pid) {
        for q in &mut self.queries {
            if let Some(at) = q.waiting.iter().position(|p| *p == pid) {
                q.waiting.swap_remove(at);
                q.replies.push(reply(pid, false, "exited before replying"));
            }
        }
        self.answer_complete();
    }

    /// Past their deadline, queries are answered with what came.
    pub(super) fn expire_queries(&mut self) {
        let now = now_ms();
        for q in self.queries.iter_mut().filter(|q| q.deadline <= now) {
            for pid in q.waiting.drain(..) {
                q.replies.push(reply(pid, false, "no reply in time"));
            }
        }
        self.answer_complete();
    }

    /// The master is exiting: answer what is left.
    pub(super) fn answer_queries_now(&mut self) {
        for q in &mut self.queries {
            for pid in q.waiting.drain(..) {
                q.replies.push(reply(pid, false, "the server stopped"));
            }
        }
        self.answer_complete();
    }

    fn answer_complete(&mut self) {
        let (done, open): (Vec<Query>, Vec<Query>) = std::mem::take(&mut self.queries)
            .into_iter()
            .partition(|q| q.waiting.is_empty());
        self.queries = open;
        for mut q in done {
            q.replies
                .sort_by_key(|r| r.get("pid").and_then(serde_json::Value::as_i64));
            let answer = json!({ "command": q.name, "replies": q.replies });
            if let Some(c) = &mut self.control {
                c.answer(q.client, Ok(answer));
            }
        }
    }
}

fn reply(pid: Pid, ok: bool, text: &str) -> serde_json::Value {
    json!({ "pid": pid.as_raw(), "ok": ok, "reply": text })
}
