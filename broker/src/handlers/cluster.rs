//! DescribeCluster (60) and InitProducerId (22).

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId,
};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;

use crate::Broker;

/// `endpointType` value for broker endpoints (KIP-919).
const ENDPOINT_TYPE_BROKERS: i8 = 1;
/// `endpointType` value for controller endpoints.
const ENDPOINT_TYPE_CONTROLLERS: i8 = 2;

/// Serves DescribeCluster.
pub fn describe_cluster(
    broker: &Arc<Broker>,
    request: &DescribeClusterRequest,
) -> DescribeClusterResponse {
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        // Kafka: a known type this listener does not serve (controllers) is a mismatch; an
        // unknown one is unsupported.
        let (code, message) = if request.endpoint_type == ENDPOINT_TYPE_CONTROLLERS {
            (
                ErrorCode::MismatchedEndpointType,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".to_owned(),
            )
        } else {
            (
                ErrorCode::UnsupportedEndpointType,
                format!("Unsupported endpoint type {}", request.endpoint_type),
            )
        };
        return DescribeClusterResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message)))
            .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
            .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()));
    }
    let image = broker.metadata.image();
    let brokers = image
        .brokers()
        .values()
        .filter(|b| request.include_fenced_brokers || !b.fenced)
        .filter_map(|b| {
            let endpoint = b.endpoints.first()?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id.0))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(endpoint.port as i32)
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
                    // The field exists from v2 and only fenced brokers are listed there.
                    .with_is_fenced(request.include_fenced_brokers && b.fenced),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN)
}

/// Serves InitProducerId for idempotent producers. A producer without a transactional id always
/// gets a fresh id at epoch 0, as Kafka's broker hands out; transactional ids need the
/// transaction coordinator, which this broker does not run yet.
pub async fn init_producer_id(
    broker: &Arc<Broker>,
    request: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |code: ErrorCode| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    match &request.transactional_id {
        None => {}
        // Kafka refuses an empty transactional id outright.
        Some(id) if id.0.is_empty() => return failed(ErrorCode::InvalidRequest),
        Some(_) => return failed(ErrorCode::CoordinatorNotAvailable),
    }
    match broker.producer_ids.next_id(broker).await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(error) => {
            tracing::warn!(%error, "cannot allocate a producer id");
            failed(ErrorCode::CoordinatorLoadInProgress)
        }
    }
}
