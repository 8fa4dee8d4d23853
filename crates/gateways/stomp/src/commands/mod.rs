//! Client frames after CONNECTED, one module per concern: [`send`], [`subscribe`], [`ack`],
//! transactions here. [`handle`] runs one frame against the session and queues its answers
//! (MESSAGE frames come from the connection loop; RECEIPT frames from here); an `Err` is
//! answered with ERROR and the connection closes.

pub mod ack;
pub mod send;
pub mod subscribe;

use crate::error::{Result, StompError};
use crate::frame::{Command, Frame};
use crate::session::Session;

/// Work a frame leaves to finish before its RECEIPT: SENDs waiting to be durable.
#[derive(Default)]
pub struct Pending {
    waits: Vec<send::Durable>,
}

impl Pending {
    async fn wait(self) -> Result<()> {
        for w in self.waits {
            w.wait().await?;
        }
        Ok(())
    }
}

/// Runs one client frame.
pub async fn handle(session: &mut Session, frame: Frame) -> Result<()> {
    let receipt = frame.header("receipt").map(str::to_string);
    let mut pending = Pending::default();
    match frame.command {
        Command::Send => {
            if !buffered(session, &frame)? {
                pending.waits.extend(send::send(session, &frame).await?);
            }
        }
        Command::Subscribe => subscribe::subscribe(session, &frame).await?,
        Command::Unsubscribe => subscribe::unsubscribe(session, &frame).await?,
        Command::Ack | Command::Nack => {
            if !buffered(session, &frame)? {
                ack::settle(session, &frame)?;
            }
        }
        Command::Begin => begin(session, &frame)?,
        Command::Commit => pending = commit(session, &frame).await?,
        Command::Abort => {
            let id = transaction_id(&frame)?;
            let frames = session
                .transactions
                .remove(id)
                .ok_or_else(|| unknown_transaction(id))?;
            session.transaction_bytes -= frames.iter().map(Frame::size).sum::<usize>();
        }
        Command::Disconnect => session.disconnecting = true,
        Command::Connect | Command::Stomp => {
            return Err(StompError::protocol(
                "already connected",
                "CONNECT was sent on a connected session",
            ))
        }
        Command::Connected | Command::Message | Command::Receipt | Command::Error => {
            return Err(StompError::protocol(
                "unexpected frame",
                format!("{} is a server frame", frame.command.as_str()),
            ))
        }
    }
    if let Some(id) = receipt {
        // A SEND's receipt, like a publisher confirm, says the message is durable.
        pending.wait().await?;
        session
            .out
            .push(Frame::new(Command::Receipt).with("receipt-id", id));
    }
    Ok(())
}

fn transaction_id(frame: &Frame) -> Result<&str> {
    frame
        .header("transaction")
        .ok_or_else(|| StompError::missing("transaction", frame.command.as_str()))
}

fn unknown_transaction(id: &str) -> StompError {
    StompError::protocol(
        "invalid transaction",
        format!("transaction '{id}' is not open"),
    )
}

/// A SEND, ACK or NACK with `transaction` is kept for COMMIT: true if it was.
fn buffered(session: &mut Session, frame: &Frame) -> Result<bool> {
    let Some(id) = frame.header("transaction") else {
        return Ok(false);
    };
    let config = &session.ctx.config;
    let (max, bytes_max) = (config.transaction_frames_max, config.transaction_bytes_max);
    let frames = session
        .transactions
        .get_mut(id)
        .ok_or_else(|| unknown_transaction(id))?;
    if frames.len() >= max {
        return Err(StompError::Limit(format!(
            "transaction '{id}' holds {max} frames, the most one may (transaction_frames_max)"
        )));
    }
    if session.transaction_bytes + frame.size() > bytes_max {
        return Err(StompError::Limit(format!(
            "open transactions hold more than {bytes_max} bytes (transaction_bytes_max)"
        )));
    }
    session.transaction_bytes += frame.size();
    frames.push(frame.clone());
    Ok(true)
}

fn begin(session: &mut Session, frame: &Frame) -> Result<()> {
    let id = transaction_id(frame)?;
    if session.transactions.contains_key(id) {
        return Err(StompError::protocol(
            "invalid transaction",
            format!("transaction '{id}' is already open"),
        ));
    }
    let max = session.ctx.config.transactions_max;
    if session.transactions.len() >= max {
        return Err(StompError::Limit(format!(
            "{max} transactions are open, the most one connection may have (transactions_max)"
        )));
    }
    session.transactions.insert(id.to_string(), Vec::new());
    Ok(())
}

/// Runs a transaction's frames in order. Its SENDs are published one after another, its ACKs
/// and NACKs settled; the receipt waits for every SEND to be durable.
async fn commit(session: &mut Session, frame: &Frame) -> Result<Pending> {
    let id = transaction_id(frame)?;
    let frames = session
        .transactions
        .remove(id)
        .ok_or_else(|| unknown_transaction(id))?;
    session.transaction_bytes -= frames.iter().map(Frame::size).sum::<usize>();
    let mut pending = Pending::default();
    for f in frames {
        match f.command {
            Command::Send => pending.waits.extend(send::send(session, &f).await?),
            _ => ack::settle(session, &f)?,
        }
    }
    Ok(pending)
}
