//! The notify-push Lambda function: fed the table's stream (outbox items only, by the event
//! source's filter), it publishes each registry event to the SNS topic
//! (`QUAYSIDE_TOPIC_ARN`) through [`quayside::aws::notify::handle`], with its outbox key as
//! `id` in the body and the `event_id` attribute (delivery is at least once: subscribers
//! drop copies by it), reporting failed records so that the stream retries them.

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use quayside::aws::sns::SnsEvents;
use quayside::aws::{Aws, Settings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    quayside::aws::logging::init();
    let settings = Settings::from_env()?;
    let topic = settings
        .topic_arn
        .ok_or("QUAYSIDE_TOPIC_ARN is not set: notify-push needs the topic's ARN")?;
    let sink = SnsEvents::new(Aws::from_lambda_env().sns(), topic);
    run(service_fn(async |event: LambdaEvent<Event>| {
        Ok::<DynamoDbEventResponse, Error>(
            quayside::aws::notify::handle(&sink, event.payload).await,
        )
    }))
    .await
}
