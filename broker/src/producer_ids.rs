//! Producer ids for InitProducerId, handed out from blocks the controller allocates, so ids are
//! unique across the cluster and across restarts.

use parking_lot::Mutex;
use spate_controller::controller::{ControllerError, PRODUCER_ID_BLOCK_SIZE};
use spate_controller::frontend::{ControllerReply, ControllerRequest};

use crate::Broker;

/// The current block: ids in `next..end` are still free.
#[derive(Debug, Default)]
pub struct ProducerIdBlock {
    range: Mutex<(i64, i64)>,
    /// Serializes block requests so concurrent callers do not each fetch one.
    refill: tokio::sync::Mutex<()>,
}

impl ProducerIdBlock {
    /// Takes the next free id, fetching a new block from the controller when needed.
    pub async fn next_id(&self, broker: &Broker) -> Result<i64, ControllerError> {
        loop {
            {
                let mut range = self.range.lock();
                if range.0 < range.1 {
                    let id = range.0;
                    range.0 += 1;
                    return Ok(id);
                }
            }
            let _guard = self.refill.lock().await;
            let has_free = {
                let range = self.range.lock();
                range.0 < range.1
            };
            if has_free {
                // Another caller refilled while this one waited.
                continue;
            }
            let reply = broker
                .metadata
                .submit(ControllerRequest::AllocateProducerIds {
                    broker_id: broker.node_id,
                    broker_epoch: broker.broker_epoch,
                })
                .await?;
            let ControllerReply::ProducerIdsAllocated { first_producer_id } = reply else {
                return Err(ControllerError::Unavailable(
                    "unexpected reply to a producer id request".into(),
                ));
            };
            *self.range.lock() = (
                first_producer_id,
                first_producer_id + PRODUCER_ID_BLOCK_SIZE,
            );
        }
    }
}
