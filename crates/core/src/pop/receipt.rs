//! [`ReceiptHandle`]: names one delivery of one message to a consumer group, as text a client
//! hands back unchanged with its ack (RocketMQ's `receipt_handle`).

use std::fmt;
use std::str::FromStr;

use porter_storage::Offset;

/// `<epoch>-<partition>-<offset>-<receipt>`, in lowercase hex. The epoch is the broker's
/// incarnation (receipt numbers start again after a restart), the receipt the delivery's number
/// in its [`super::PopState`] (a redelivery gets a new one, so a stale handle is refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiptHandle {
    pub epoch: u64,
    pub partition: i32,
    pub offset: Offset,
    pub receipt: u64,
}

impl fmt::Display for ReceiptHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:x}-{:x}-{:x}-{:x}",
            self.epoch, self.partition, self.offset, self.receipt
        )
    }
}

impl FromStr for ReceiptHandle {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.split('-');
        let mut next = || {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.len() <= 16)
                .and_then(|p| u64::from_str_radix(p, 16).ok())
                .ok_or("malformed receipt handle")
        };
        let handle = ReceiptHandle {
            epoch: next()?,
            partition: i32::try_from(next()?).map_err(|_| "malformed receipt handle")?,
            offset: Offset::try_from(next()?).map_err(|_| "malformed receipt handle")?,
            receipt: next()?,
        };
        if parts.next().is_some() {
            return Err("malformed receipt handle");
        }
        Ok(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_reads_back() {
        let handle = ReceiptHandle {
            epoch: 0xdead,
            partition: 3,
            offset: 1 << 40,
            receipt: 7,
        };
        assert_eq!(handle.to_string().parse::<ReceiptHandle>(), Ok(handle));
        for bad in [
            "",
            "1-2-3",
            "1-2-3-4-5",
            "x-2-3-4",
            "1--3-4",
            "1-ffffffffff-3-4",
        ] {
            assert!(bad.parse::<ReceiptHandle>().is_err(), "{bad}");
        }
    }
}
