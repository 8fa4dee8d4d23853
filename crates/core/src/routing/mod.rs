//! The protocol-neutral routing model, after AMQP 0-9-1 as RabbitMQ implements it: exchanges,
//! bindings, and the decision of which queues a published message goes to. No delivery, no
//! storage, no wire format: the AMQP gateway turns `exchange.declare`, `queue.bind`,
//! `basic.publish`... into calls here, and the metadata journal will record the mutations.
//!
//! - [`exchange`]: [`Exchange`], its kinds and the declare rules (equivalence, reserved names).
//! - [`equivalence`]: whether a re-declare asks for the same thing, RabbitMQ's rule and words.
//! - [`binding`]: [`Binding`] and [`Destination`], and their compiled matchers.
//! - [`source`]: one exchange's bindings with the indexes a publish routes by.
//! - [`topic`]: `*` / `#` routing-key patterns; [`topic_trie`]: a topic exchange's trie of them.
//! - [`headers`]: headers-exchange matching (`x-match`).
//! - [`value`]: [`HeaderValue`], a neutral field-table value.
//! - [`limits`]: the named bounds.
//! - [`error`]: [`RoutingError`], each variant documented with its AMQP reply code.
//!
//! A [`RoutingTable`] is one virtual host's graph. Every mutation validates fully before changing
//! anything, so an `Err` leaves the table as it was, and applying the same calls in the same order
//! always yields the same table: ready to be wrapped in metadata commands (check, journal, apply).
//!
//! The table is built of persistent collections (`imbl`), so a copy costs O(1) and each change
//! O(log n): see [`source`] for why.

pub mod binding;
pub mod equivalence;
pub mod error;
pub mod exchange;
pub mod headers;
pub mod limits;
mod small_map;
mod source;
pub mod topic;
mod topic_trie;
pub mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use imbl::{OrdMap, OrdSet};

use serde::{Deserialize, Serialize};

pub use binding::{Binding, Destination};
pub use equivalence::{DeclaredKind, Inequivalent};
pub use error::RoutingError;
pub use exchange::{Exchange, ExchangeKind, DEFAULT_EXCHANGE};
pub use value::{FieldTable, HeaderValue, Headers};

use binding::Matcher;
use exchange::{validate_name, PREDECLARED};
use limits::{BINDINGS_PER_EXCHANGE_MAX, EXCHANGE_TO_EXCHANGE_DEPTH_MAX};
use small_map::SmallMap;
use source::SourceBindings;

/// Where a published message goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteResult {
    /// Destination queues, each once, sorted by name (deterministic). Empty means unroutable:
    /// the gateway returns a `mandatory` message (312 NO_ROUTE) or drops it.
    pub queues: Vec<String>,
    /// Some exchange lay deeper than [`EXCHANGE_TO_EXCHANGE_DEPTH_MAX`] hops and was not
    /// followed; `queues` holds what was reached before. Worth a warning: the topology is
    /// likely a mistake.
    pub depth_limit_reached: bool,
}

/// Whether a declare made something new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclareOutcome {
    Created,
    /// An equivalent exchange already existed; it is unchanged (its other arguments are kept).
    Existed,
}

/// One virtual host's exchanges, queue names and bindings. Queues themselves (messages,
/// consumers) live elsewhere; the table only needs their names, for the default exchange and to
/// check bind targets, and is told when one appears or goes ([`Self::add_queue`],
/// [`Self::remove_queue`]).
///
/// Invariants, checked by the tests after every operation: every binding's source is a declared
/// exchange (never the default one) and its destination exists; no exchange has more than
/// [`BINDINGS_PER_EXCHANGE_MAX`] bindings; no exchange has an empty entry in `bindings`;
/// `incoming` lists exactly the bindings in `bindings`, and has no empty entry either.
///
/// Cloning is O(1) and every operation but routing and whole-exchange or whole-queue removal is
/// O(log n) in the number of exchanges, queues and bindings; removals are O(k log n) for the k
/// bindings they remove.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "RoutingSnapshot", try_from = "RoutingSnapshot")]
pub struct RoutingTable {
    exchanges: OrdMap<String, Exchange>,
    queues: OrdSet<String>,
    /// Outgoing bindings by source exchange.
    bindings: OrdMap<String, SourceBindings>,
    /// Incoming bindings by destination, as (source, the binding's id in the source's set):
    /// deleting a queue or an exchange finds its bindings here rather than by asking every
    /// exchange, as an exclusive queue's disconnect must not cost O(exchanges).
    incoming: OrdMap<Destination, SmallMap<(String, u64), ()>>,
}

/// Equality is that of the exchanges, queues and bindings (in the order made); binding ids and
/// the incoming map derive from them.
impl PartialEq for RoutingTable {
    fn eq(&self, other: &Self) -> bool {
        self.exchanges == other.exchanges
            && self.queues == other.queues
            && self.bindings == other.bindings
    }
}

impl Eq for RoutingTable {}

impl Default for RoutingTable {
    fn default() -> Self {
        Self::new()
    }
}

impl RoutingTable {
    /// A fresh virtual host: the predeclared `amq.*` exchanges, no queues, no bindings.
    pub fn new() -> Self {
        let exchanges = PREDECLARED
            .iter()
            .map(|&(name, kind)| (name.to_string(), Exchange::new(name, kind)))
            .collect();
        RoutingTable {
            exchanges,
            ..RoutingTable::empty()
        }
    }

    /// Not even the predeclared exchanges: the start of a snapshot's restore.
    fn empty() -> Self {
        RoutingTable {
            exchanges: OrdMap::new(),
            queues: OrdSet::new(),
            bindings: OrdMap::new(),
            incoming: OrdMap::new(),
        }
    }

    pub fn exchange(&self, name: &str) -> Option<&Exchange> {
        self.exchanges.get(name)
    }

    /// Declared exchanges by name (the default exchange is implicit and not listed).
    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.exchanges.values()
    }

    pub fn has_queue(&self, name: &str) -> bool {
        self.queues.contains(name)
    }

    /// Every explicit binding, by source exchange then in the order made.
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.values().flat_map(SourceBindings::iter)
    }

    /// The bindings whose source is `exchange`, in the order made.
    pub fn bindings_from(&self, exchange: &str) -> impl Iterator<Item = &Binding> {
        self.bindings
            .get(exchange)
            .into_iter()
            .flat_map(SourceBindings::iter)
    }

    /// The bindings to `destination`, by source exchange then in the order made.
    pub fn bindings_to<'a>(
        &'a self,
        destination: &'a Destination,
    ) -> impl Iterator<Item = &'a Binding> + 'a {
        self.incoming
            .get(destination)
            .into_iter()
            .flat_map(SmallMap::keys)
            .filter_map(|(source, id)| self.bindings.get(source)?.get(*id))
    }

    /// Whether exactly this binding exists. O(log n).
    pub fn has_binding(&self, binding: &Binding) -> bool {
        self.bindings
            .get(&binding.source)
            .is_some_and(|set| set.contains(binding))
    }

    /// `exchange.declare` with `passive`: the exchange, or 404. The default exchange is 403, as
    /// RabbitMQ refuses every operation on it.
    pub fn check_exchange(&self, name: &str) -> Result<&Exchange, RoutingError> {
        if name == DEFAULT_EXCHANGE {
            return Err(default_exchange_refused(
                "the default exchange cannot be declared",
            ));
        }
        self.exchanges
            .get(name)
            .ok_or_else(|| RoutingError::ExchangeNotFound(name.to_string()))
    }

    /// `exchange.declare`: creates the exchange, or accepts an equivalent re-declare. An existing
    /// `amq.*` exchange may be re-declared; a new one may not (403). A differing re-declare is 406.
    /// The alternate exchange need not exist yet; routing skips it while it does not.
    pub fn declare_exchange(&mut self, exchange: Exchange) -> Result<DeclareOutcome, RoutingError> {
        exchange.validate()?;
        if let Some(existing) = self.exchanges.get(&exchange.name) {
            existing.check_equivalent(&exchange)?;
            return Ok(DeclareOutcome::Existed);
        }
        if Exchange::is_reserved_name(&exchange.name) {
            return Err(RoutingError::AccessRefused {
                name: exchange.name,
                reason: "exchange names starting with 'amq.' are reserved",
            });
        }
        self.exchanges.insert(exchange.name.clone(), exchange);
        Ok(DeclareOutcome::Created)
    }

    /// `exchange.delete`. Deleting an exchange that does not exist succeeds (`Ok(false)`), as in
    /// RabbitMQ. With `if_unused`, an exchange that is the source of any binding is 406. Bindings
    /// from and to the exchange go with it, and auto-delete exchanges left without bindings follow.
    pub fn delete_exchange(&mut self, name: &str, if_unused: bool) -> Result<bool, RoutingError> {
        if name == DEFAULT_EXCHANGE {
            return Err(default_exchange_refused(
                "the default exchange cannot be deleted",
            ));
        }
        if Exchange::is_reserved_name(name) && self.exchanges.contains_key(name) {
            return Err(RoutingError::AccessRefused {
                name: name.to_string(),
                reason: "predeclared 'amq.' exchanges cannot be deleted",
            });
        }
        if !self.exchanges.contains_key(name) {
            return Ok(false);
        }
        if if_unused && self.bindings.contains_key(name) {
            return Err(RoutingError::precondition(
                name,
                "exchange in use (has bindings)",
            ));
        }
        self.remove_exchange_cascading(name);
        Ok(true)
    }

    /// A queue now exists: the default exchange routes to it and it can be bound. Whether it was
    /// new. The name cannot be empty: a `queue.declare` with an empty name asks the gateway to
    /// generate one, which it does before calling this.
    pub fn add_queue(&mut self, name: &str) -> Result<bool, RoutingError> {
        validate_name(name)?;
        if name.is_empty() {
            return Err(RoutingError::InvalidName {
                len_bytes: 0,
                reason: "a queue name cannot be empty",
            });
        }
        Ok(self.queues.insert(name.to_string()).is_none())
    }

    /// A queue is gone: its bindings go too, and auto-delete exchanges left without bindings
    /// follow. Whether it was known.
    pub fn remove_queue(&mut self, name: &str) -> bool {
        if self.queues.remove(name).is_none() {
            return false;
        }
        self.remove_bindings_to(&Destination::Queue(name.to_string()));
        true
    }

    /// `queue.bind` / `exchange.bind`. Binding twice is a no-op (`Ok(false)`). Source and
    /// destination must exist (404); neither may be the default exchange (403); a headers source
    /// checks `x-match` (406).
    pub fn bind(&mut self, binding: Binding) -> Result<bool, RoutingError> {
        let kind = self.check_binding_ends(&binding)?;
        let matcher = Matcher::compile(kind, &binding)?;
        let existing = self.bindings.get(&binding.source);
        if existing.is_some_and(|set| set.contains(&binding)) {
            return Ok(false);
        }
        if existing.is_some_and(|set| set.len() >= BINDINGS_PER_EXCHANGE_MAX) {
            return Err(RoutingError::LimitExceeded {
                name: binding.source,
                reason: format!("more than {BINDINGS_PER_EXCHANGE_MAX} bindings"),
            });
        }
        let (source, destination) = (binding.source.clone(), binding.destination.clone());
        let id = self
            .bindings
            .entry(source.clone())
            .or_default()
            .insert(binding, matcher);
        self.incoming
            .entry(destination)
            .or_default()
            .insert((source, id), ());
        Ok(true)
    }

    /// `queue.unbind` / `exchange.unbind`. Source and destination must exist (404), but the
    /// binding need not: unbinding a missing binding succeeds (`Ok(false)`), as in RabbitMQ.
    /// Removing an auto-delete exchange's last binding deletes that exchange.
    pub fn unbind(&mut self, binding: &Binding) -> Result<bool, RoutingError> {
        self.check_binding_ends(binding)?;
        let Some(set) = self.bindings.get_mut(&binding.source) else {
            return Ok(false);
        };
        let Some(id) = set.remove(binding) else {
            return Ok(false);
        };
        let emptied = set.is_empty();
        self.forget_incoming(&binding.destination, &binding.source, id);
        if emptied {
            self.bindings.remove(&binding.source);
            self.auto_delete_if_unbound(vec![binding.source.clone()]);
        }
        Ok(true)
    }

    /// The queues a message published to `exchange` with `routing_key` and `headers` goes to.
    ///
    /// The default exchange `""` routes to the queue named by the routing key, if there is one.
    /// Otherwise the exchange must exist (404) and not be internal (403). Each exchange reached
    /// routes by its own kind; a destination exchange is followed in turn (breadth-first, each
    /// exchange at most once, so cycles end); an exchange that matches no binding at all hands
    /// the message to its alternate exchange, if that exists. Exchanges more than
    /// [`EXCHANGE_TO_EXCHANGE_DEPTH_MAX`] hops away are not followed.
    pub fn route(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: &Headers,
    ) -> Result<RouteResult, RoutingError> {
        if exchange == DEFAULT_EXCHANGE {
            let queues = match self.queues.get(routing_key) {
                Some(queue) => vec![queue.clone()],
                None => Vec::new(),
            };
            return Ok(RouteResult {
                queues,
                depth_limit_reached: false,
            });
        }
        let start = self
            .exchanges
            .get(exchange)
            .ok_or_else(|| RoutingError::ExchangeNotFound(exchange.to_string()))?;
        if start.internal {
            return Err(RoutingError::InternalExchange(exchange.to_string()));
        }

        let mut queues: BTreeSet<&str> = BTreeSet::new();
        let mut visited: BTreeSet<&str> = BTreeSet::from([exchange]);
        let mut frontier: Vec<&Exchange> = vec![start];
        let mut depth = 0;
        let mut depth_limit_reached = false;
        while !frontier.is_empty() {
            let mut next: Vec<&Exchange> = Vec::new();
            for current in frontier {
                let mut matched_any = false;
                if let Some(set) = self.bindings.get(&current.name) {
                    set.for_each_match(routing_key, headers, &mut |destination| {
                        matched_any = true;
                        match destination {
                            Destination::Queue(queue) => {
                                debug_assert!(self.queues.contains(queue));
                                queues.insert(queue);
                            }
                            Destination::Exchange(name) => {
                                debug_assert!(self.exchanges.contains_key(name));
                                self.follow(name, &mut visited, &mut next);
                            }
                        }
                    });
                }
                if !matched_any {
                    if let Some(alternate) = current.alternate_exchange() {
                        self.follow(alternate, &mut visited, &mut next);
                    }
                }
            }
            depth += 1;
            if depth > EXCHANGE_TO_EXCHANGE_DEPTH_MAX && !next.is_empty() {
                depth_limit_reached = true;
                break;
            }
            frontier = next;
        }
        Ok(RouteResult {
            queues: queues.into_iter().map(str::to_string).collect(),
            depth_limit_reached,
        })
    }

    /// Queues exchange `name` for the next routing round unless it was seen already or does not
    /// exist (an alternate exchange may be named before it is declared). The name is looked up
    /// so the borrows are the table's.
    fn follow<'a>(
        &'a self,
        name: &str,
        visited: &mut BTreeSet<&'a str>,
        next: &mut Vec<&'a Exchange>,
    ) {
        if let Some((name, exchange)) = self.exchanges.get_key_value(name) {
            if visited.insert(name.as_str()) {
                next.push(exchange);
            }
        }
    }

    /// The checks shared by bind and unbind: names, the default exchange, existence. Returns the
    /// source's kind.
    fn check_binding_ends(&self, binding: &Binding) -> Result<ExchangeKind, RoutingError> {
        validate_name(&binding.source)?;
        validate_name(binding.destination.name())?;
        validate_name(&binding.routing_key)?;
        if binding.source == DEFAULT_EXCHANGE
            || binding.destination == Destination::Exchange(DEFAULT_EXCHANGE.to_string())
        {
            return Err(default_exchange_refused(
                "the default exchange cannot be bound explicitly",
            ));
        }
        let source = self
            .exchanges
            .get(&binding.source)
            .ok_or_else(|| RoutingError::ExchangeNotFound(binding.source.clone()))?;
        match &binding.destination {
            Destination::Queue(queue) if !self.queues.contains(queue) => {
                Err(RoutingError::QueueNotFound(queue.clone()))
            }
            Destination::Exchange(name) if !self.exchanges.contains_key(name) => {
                Err(RoutingError::ExchangeNotFound(name.clone()))
            }
            _ => Ok(source.kind),
        }
    }

    /// Removes an exchange with its outgoing and incoming bindings, then any auto-delete
    /// exchange that lost its last binding that way.
    fn remove_exchange_cascading(&mut self, name: &str) {
        let removed = self.exchanges.remove(name);
        debug_assert!(removed.is_some());
        if let Some(outgoing) = self.bindings.remove(name) {
            for (id, binding) in outgoing.iter_ids() {
                self.forget_incoming(&binding.destination, name, id);
            }
        }
        self.remove_bindings_to(&Destination::Exchange(name.to_string()));
    }

    /// Drops binding `id` of `source` from the incoming map of `destination`.
    fn forget_incoming(&mut self, destination: &Destination, source: &str, id: u64) {
        let Some(sources) = self.incoming.get_mut(destination) else {
            debug_assert!(false, "incoming mirrors bindings");
            return;
        };
        let removed = sources.remove(&(source.to_string(), id));
        debug_assert!(removed.is_some(), "incoming mirrors bindings");
        if sources.is_empty() {
            self.incoming.remove(destination);
        }
    }

    /// Removes every binding to `destination` and auto-deletes the sources it leaves unbound.
    fn remove_bindings_to(&mut self, destination: &Destination) {
        let emptied = self.unbind_all_to(destination);
        self.auto_delete_if_unbound(emptied);
    }

    /// Removes every binding to `destination` (O(k log n) for k bindings, whatever the number
    /// of exchanges); returns the sources left without bindings, which are removed from
    /// `bindings`, in name order.
    fn unbind_all_to(&mut self, destination: &Destination) -> Vec<String> {
        let Some(incoming) = self.incoming.remove(destination) else {
            return Vec::new();
        };
        let mut emptied = Vec::new();
        for (source, id) in incoming.keys() {
            let Some(set) = self.bindings.get_mut(source) else {
                debug_assert!(false, "incoming mirrors bindings");
                continue;
            };
            let removed = set.remove_id(*id);
            debug_assert!(removed, "incoming mirrors bindings");
            if set.is_empty() {
                self.bindings.remove(source);
                emptied.push(source.clone());
            }
        }
        emptied
    }

    /// Deletes those of `sources` that are auto-delete and have no bindings left. Deleting one
    /// removes the bindings to it, which can empty further exchanges: a worklist, not recursion,
    /// so a long chain cannot overflow the stack. Ends because each round deletes an exchange.
    fn auto_delete_if_unbound(&mut self, mut sources: Vec<String>) {
        while let Some(source) = sources.pop() {
            let unbound = !self.bindings.contains_key(&source);
            let auto_delete = self
                .exchanges
                .get(&source)
                .is_some_and(|exchange| exchange.auto_delete);
            if !(unbound && auto_delete) {
                continue;
            }
            self.exchanges.remove(&source);
            sources.extend(self.unbind_all_to(&Destination::Exchange(source)));
        }
    }

    /// Test support: `incoming` lists exactly the bindings, with no empty entry.
    #[cfg(test)]
    fn assert_incoming_consistent(&self) {
        let mut expected: std::collections::BTreeMap<&Destination, Vec<(String, u64)>> =
            std::collections::BTreeMap::new();
        for (source, set) in &self.bindings {
            for (id, binding) in set.iter_ids() {
                expected
                    .entry(&binding.destination)
                    .or_default()
                    .push((source.clone(), id));
            }
        }
        assert_eq!(self.incoming.len(), expected.len());
        for (destination, mut list) in expected {
            list.sort();
            let actual: Vec<(String, u64)> = self.incoming[destination].keys().cloned().collect();
            assert_eq!(actual, list, "incoming of {destination:?}");
        }
    }
}

fn default_exchange_refused(reason: &'static str) -> RoutingError {
    RoutingError::AccessRefused {
        name: DEFAULT_EXCHANGE.to_string(),
        reason,
    }
}

/// The serialised form of a [`RoutingTable`]: plain lists, no compiled matchers. Restoring it
/// re-runs the declares and binds in order, so a snapshot can never hold a state the operations
/// could not have built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingSnapshot {
    pub exchanges: Vec<Exchange>,
    pub queues: Vec<String>,
    pub bindings: Vec<Binding>,
}

impl From<RoutingTable> for RoutingSnapshot {
    fn from(table: RoutingTable) -> Self {
        RoutingSnapshot {
            bindings: table.bindings().cloned().collect(),
            exchanges: table.exchanges.values().cloned().collect(),
            queues: table.queues.iter().cloned().collect(),
        }
    }
}

impl TryFrom<RoutingSnapshot> for RoutingTable {
    type Error = RoutingError;

    fn try_from(snapshot: RoutingSnapshot) -> Result<Self, RoutingError> {
        let mut table = RoutingTable::empty();
        for exchange in snapshot.exchanges {
            exchange.validate()?;
            table.exchanges.insert(exchange.name.clone(), exchange);
        }
        for queue in snapshot.queues {
            table.add_queue(&queue)?;
        }
        for binding in snapshot.bindings {
            table.bind(binding)?;
        }
        Ok(table)
    }
}
