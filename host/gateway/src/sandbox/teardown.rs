//! The decision's instance, torn down off the request's path.

use std::sync::Arc;
use std::time::Duration;

use switchyard_policy::{CallContext, SpentInstance};

use super::scheduler::{DecisionScheduler, Turn};
use crate::live::loader::LoadedPolicy;
use crate::live::tenant::Tenant;

/// An inline decision's spent instance and the tenant's turn, kept until the request first waits
/// (normally for its upstream). Then the instance is torn down (its pooled memory reset) and the
/// policy's next instance made ([`switchyard_policy::CompiledPolicy::prepare`]); on the
/// request's path both would delay its upstream call (see `README.md` in this folder). The
/// decision is charged to the tenant then, with both included, so a policy whose instances are
/// costly to make or tear down still crosses the offload line; the turn is held until then, so
/// that the tenant's concurrency limit covers them too. Offloaded decisions do both on their pool
/// thread instead, after they answered. Dropping it anywhere is correct.
pub(crate) struct Teardown(Option<Pending>);

struct Pending {
    instance: Option<SpentInstance>,
    scheduler: Arc<DecisionScheduler>,
    tenant: Arc<Tenant>,
    policy: Arc<LoadedPolicy>,
    ctx: CallContext,
    call_time: Duration,
    _turn: Turn,
}

impl Teardown {
    /// Nothing to tear down (an offloaded or failed decision).
    pub fn none() -> Self {
        Teardown(None)
    }

    pub(super) fn pending(
        instance: SpentInstance,
        scheduler: Arc<DecisionScheduler>,
        tenant: Arc<Tenant>,
        policy: Arc<LoadedPolicy>,
        ctx: CallContext,
        call_time: Duration,
        turn: Turn,
    ) -> Self {
        Teardown(Some(Pending {
            instance: Some(instance),
            scheduler,
            tenant,
            policy,
            ctx,
            call_time,
            _turn: turn,
        }))
    }

    /// Runs `work` (the rest of the request) and tears the instance down as soon as `work` first
    /// waits: on the next pass of the scheduler after its first poll returned pending. When that
    /// wait is the upstream call, the request has been handed to its connection task, which that
    /// hand-over woke ahead of this task, so the request is written before the teardown runs;
    /// when it is the cache or the budget store (Redis), the teardown runs during that round trip.
    pub async fn after_first_wait<F: Future>(self, work: F) -> F::Output {
        match self.0 {
            None => work.await,
            Some(pending) => drop_after_first_wait(work, pending).await,
        }
    }
}

/// Runs `work` and drops `value` on the scheduler's next pass after `work`'s first poll.
async fn drop_after_first_wait<F: Future, T>(work: F, value: T) -> F::Output {
    let drop_it = async move {
        tokio::task::yield_now().await;
        drop(value);
    };
    tokio::join!(work, drop_it).0
}

impl Drop for Pending {
    fn drop(&mut self) {
        let (teardown, prepared) = match self.instance.take() {
            // Kept for the tenant's next decision: nothing to tear down or make.
            Some(instance) if instance.kept_warm() => (Duration::ZERO, Duration::ZERO),
            instance => (
                instance.map_or(Duration::ZERO, SpentInstance::tear_down),
                self.policy.compiled.prepare(&self.ctx).took,
            ),
        };
        self.scheduler.charge(
            &self.tenant.name,
            self.call_time + teardown + prepared,
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::{mpsc, oneshot};

    use super::*;

    /// The instance is torn down after the request reached its connection task and before the
    /// response came back: off the request's path, not after the whole upstream call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_teardown_runs_after_the_request_left_and_before_the_response() {
        let log = Arc::new(Mutex::new(Vec::new()));
        // A connection task like hyper's: it gets the request through a channel and answers
        // later.
        let (to_connection, mut requests) = mpsc::channel::<oneshot::Sender<()>>(1);
        let connection = tokio::spawn({
            let log = log.clone();
            async move {
                while let Some(reply) = requests.recv().await {
                    log.lock().unwrap().push("request written");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    log.lock().unwrap().push("response");
                    let _ = reply.send(());
                }
            }
        });
        // The request's task shares the one worker with the connection task, as in the server.
        let request = tokio::spawn({
            let (log, to_connection) = (log.clone(), to_connection.clone());
            async move {
                let call = async {
                    let (reply, response) = oneshot::channel();
                    to_connection.send(reply).await.unwrap();
                    response.await.unwrap();
                };
                drop_after_first_wait(call, Marker(log, "torn down")).await;
            }
        });
        request.await.unwrap();
        drop(to_connection);
        connection.await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["request written", "torn down", "response"]
        );
    }

    /// Writes `event` to the log when dropped, as a pending teardown tears down when dropped.
    struct Marker(Arc<Mutex<Vec<&'static str>>>, &'static str);

    impl Drop for Marker {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(self.1);
        }
    }
}
