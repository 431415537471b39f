//! A vhost's policies: kept in a `warren_core::policy::PolicySet`, made durable in the
//! definitions store before they take effect, and applied at once to the queues and
//! exchanges they concern, running or declared later.
//!
//! Every change runs under the vhost's definitions lock, like a declaration, so a queue
//! being declared sees either the old policies or the new ones, never half of a change.
//! Running queues get their new effective settings as a `SetArgs` command (see
//! `queue_task::policy`); exchanges hold the policy's `alternate-exchange` next to their
//! own arguments (in the vhost model). Redeclarations keep comparing arguments only, as
//! RabbitMQ does.

use super::VHost;
use serde_json::Value;
use std::sync::Arc;
use warren_core::args::QueueArgs;
use warren_core::entity::QueueMeta;
use warren_core::policy::{effective_queue_args, Policy};
use warren_core::BrokerError;
use warren_store::{DefinitionChange, Definitions, PolicyDef};

impl VHost {
    /// Every policy of this vhost, highest priority first.
    pub fn policies(&self) -> Vec<Arc<Policy>> {
        self.policies.lock().iter().cloned().collect()
    }

    pub fn policy(&self, name: &str) -> Option<Arc<Policy>> {
        self.policies.lock().get(name).cloned()
    }

    /// Sets a policy (replacing the one of the same name): durable first, then in effect
    /// for every queue and exchange it concerns. Returns true if it is new.
    pub fn set_policy(&self, policy: Policy) -> Result<bool, BrokerError> {
        let _guard = self.change();
        self.store_policy_change(DefinitionChange::PutPolicy(policy_def(&self.name, &policy)))?;
        let created = self.policies.lock().put(policy).is_none();
        self.apply_policies_locked();
        Ok(created)
    }

    /// Clears a policy; the queues and exchanges it applied to fall back to their own
    /// arguments (or to the next matching policy). Returns false if there was none.
    pub fn clear_policy(&self, name: &str) -> Result<bool, BrokerError> {
        let _guard = self.change();
        if self.policies.lock().get(name).is_none() {
            return Ok(false);
        }
        self.store_policy_change(DefinitionChange::DeletePolicy {
            vhost: self.name.clone(),
            name: name.to_string(),
        })?;
        self.policies.lock().remove(name);
        self.apply_policies_locked();
        Ok(true)
    }

    /// The settings a queue runs with: its arguments (`declared`) under the policy that
    /// applies to it now.
    pub(crate) fn queue_args_with_policy(
        &self,
        meta: &QueueMeta,
        declared: QueueArgs,
    ) -> QueueArgs {
        let policies = self.policies.lock();
        let policy = policies.for_queue(&meta.name, declared.queue_type);
        effective_queue_args(&declared, &meta.arguments, policy.map(|p| &**p))
    }

    /// Loads the stored policies (at start-up, before queues and exchanges are restored).
    pub(super) fn restore_policies(&self, defs: &Definitions) {
        let mut policies = self.policies.lock();
        for d in defs.policies.iter().filter(|d| d.vhost == self.name) {
            match stored_policy(d) {
                Ok(p) => {
                    policies.put(p);
                }
                Err(e) => tracing::error!(
                    "stored policy '{}' in vhost '{}' is not valid and is ignored: {e}",
                    d.name,
                    d.vhost
                ),
            }
        }
    }

    /// Makes a policy change durable, if this vhost keeps durable state.
    fn store_policy_change(&self, change: DefinitionChange) -> Result<(), BrokerError> {
        match &self.durability {
            Some(d) => d.apply(&[change]),
            None => Ok(()),
        }
    }

    /// Recomputes what every queue and exchange runs with after a policy change (RabbitMQ
    /// walks the vhost's queues and exchanges the same way). Queues whose settings did not
    /// change ignore the command.
    fn apply_policies_locked(&self) {
        let mut next = self.next();
        next.apply_policies(&self.policies.lock());
        self.publish(next);
        for q in self.all_queues() {
            // Arguments were validated when the queue was created; a recovered queue whose
            // arguments no longer pass runs as a plain queue (see `queue_task::spawn`).
            let declared = QueueArgs::from_declaration(&q.meta, &self.name).unwrap_or_default();
            q.set_args(self.queue_args_with_policy(&q.meta, declared));
        }
    }
}

fn policy_def(vhost: &str, p: &Policy) -> PolicyDef {
    PolicyDef {
        vhost: vhost.to_string(),
        name: p.name.clone(),
        pattern: p.pattern.clone(),
        apply_to: p.apply_to.as_str().to_string(),
        priority: p.priority.to_string(),
        definition: Value::Object(p.definition.clone()).to_string(),
    }
}

fn stored_policy(d: &PolicyDef) -> Result<Policy, String> {
    let priority: Value = serde_json::from_str(&d.priority).map_err(|e| e.to_string())?;
    let definition: Value = serde_json::from_str(&d.definition).map_err(|e| e.to_string())?;
    Policy::new(
        &d.name,
        &Value::String(d.pattern.clone()),
        &definition,
        Some(&priority),
        Some(&Value::String(d.apply_to.clone())),
    )
    .map_err(|e| e.0)
}
