//! Many MQTT connections on few tasks. rumqttc gives every connection its own `EventLoop` that
//! must be polled; a task per connection would put thousands of tasks on the 2 cores the broker
//! also needs. Instead one task (a shard) polls all of its connections' event loops through a
//! `FuturesUnordered`, and opens them a few at a time so a broker is not hit by thousands of
//! CONNECTs (and, for NATS, session creations in JetStream) in the same millisecond.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use rumqttc::{ConnectionError, Event, EventLoop, Outgoing, Packet};
use tokio::sync::watch;

/// How long a shard keeps polling after the stop signal, so DISCONNECTs reach the wire.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);
/// Connection errors printed per shard; the rest are only counted.
const PRINTED_ERRORS: u64 = 3;

/// One connection of a shard: its global id (client index) and its event loop.
pub struct Link {
    pub id: usize,
    pub eventloop: EventLoop,
}

/// Drives `links` until `stop` becomes true (then for at most [`DISCONNECT_GRACE`] while the
/// DISCONNECTs go out) or until every link has ended. At most `max_connecting` links are between
/// their TCP connect and their CONNACK at once. `on_event(id, event)` sees every event of every
/// link; a link whose event loop fails is counted in `errors` and not polled again (rumqttc would
/// reconnect it, and a reconnected clean session has lost its subscriptions).
pub async fn drive<F>(
    links: Vec<Link>,
    max_connecting: usize,
    mut stop: watch::Receiver<bool>,
    errors: &AtomicU64,
    mut on_event: F,
) where
    F: FnMut(usize, Event),
{
    let mut waiting = links.into_iter();
    let mut running = FuturesUnordered::new();
    let mut connecting = 0;
    let mut printed = 0;
    let mut connected = HashSet::new();
    let poll = |id: usize, mut eventloop: EventLoop| async move {
        let event = eventloop.poll().await;
        (id, eventloop, event)
    };
    let mut start_next = |running: &mut FuturesUnordered<_>, connecting: &mut usize| {
        while *connecting < max_connecting.max(1) {
            let Some(link) = waiting.next() else { break };
            running.push(poll(link.id, link.eventloop));
            *connecting += 1;
        }
    };
    start_next(&mut running, &mut connecting);
    let grace = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
    tokio::pin!(grace);
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    stopping = true;
                    grace.as_mut().reset(tokio::time::Instant::now() + DISCONNECT_GRACE);
                }
            }
            _ = &mut grace => break,
            next = running.next() => {
                let Some((id, eventloop, event)) = next else { break };
                let event: Result<Event, ConnectionError> = event;
                match event {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                        // Written: this link is done; dropping it closes the socket.
                    }
                    Ok(event) => {
                        if matches!(event, Event::Incoming(Packet::ConnAck(_))) && connected.insert(id) {
                            connecting -= 1;
                            if !stopping {
                                start_next(&mut running, &mut connecting);
                            }
                        }
                        on_event(id, event);
                        running.push(poll(id, eventloop));
                    }
                    Err(error) => {
                        // Still connecting if the event loop never got its CONNACK.
                        if !connected.contains(&id) {
                            connecting -= 1;
                            if !stopping {
                                start_next(&mut running, &mut connecting);
                            }
                        }
                        if !stopping {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if printed < PRINTED_ERRORS {
                                printed += 1;
                                eprintln!("mqtt connection {id}: {error}");
                            }
                        }
                    }
                }
            }
        }
    }
}
