//! What the engine outputs ([`Decision`]) and what people feed it besides observations
//! ([`Override`]). The types are the API's ([`catchup_proto::decision`]): status shows them as they
//! are.

pub use catchup_proto::decision::{
    Alert, AlertCode, BrokerForecast, Decision, ExtensionDecision, ExtensionTarget, Gate,
    GateState, GroupDecision, InputDeadline, InputLoss, Origin, Override, OverrideAction,
    OverrideScope, RateUnit, RetentionTarget, Severity, TopicDecision,
};
