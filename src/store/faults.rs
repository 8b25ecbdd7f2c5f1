//! Fault injection for tests: in test builds a hook set with `StateDir::inject_faults` decides
//! which writes fail; in other builds nothing is decided and nothing fails.

/// What is being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// An atomic save of a state file (the hook fails it just before the rename).
    Save,
    /// An append to the audit log (the hook fails it before anything is written).
    Audit,
    /// An append to a JSON-lines state file (the hook fails it before anything is written).
    Append,
}

/// The hook of one [`StateDir`](super::StateDir).
#[derive(Default)]
pub(super) struct Hook {
    #[cfg(test)]
    decide: std::sync::Mutex<Option<Decide>>,
}

#[cfg(test)]
type Decide = Box<dyn Fn(Op, &str) -> bool + Send + Sync>;

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

impl Hook {
    /// The error a test wants for writing `name`, if any.
    pub(super) fn fault(&self, op: Op, name: &str) -> Option<std::io::Error> {
        #[cfg(test)]
        {
            let decide = self.decide.lock().unwrap_or_else(|e| e.into_inner());
            if decide.as_ref().is_some_and(|d| d(op, name)) {
                return Some(std::io::Error::other(format!("injected {op:?} fault")));
            }
        }
        let _ = (op, name);
        None
    }
}

#[cfg(test)]
impl super::StateDir {
    /// Makes the writes `decide` picks fail (`decide(op, file name)`), until replaced.
    pub(crate) fn inject_faults(&self, decide: impl Fn(Op, &str) -> bool + Send + Sync + 'static) {
        *self.faults.decide.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(decide));
    }
}
