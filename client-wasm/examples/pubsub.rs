//! Connects to a running hub, subscribes to a pattern, publishes a few messages and prints what
//! arrives: `cargo run -p switchboard-client --example pubsub -- ws://127.0.0.1:7070/ws`.

use std::time::Duration;

use switchboard_client::{ClientOptions, Headers, connect};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "ws://127.0.0.1:7070/ws".to_owned());
    let client = connect(&url, ClientOptions::default()).await?;
    println!("connected, session {:?}", client.session_id());

    let mut wide = client.subscribe("demo.>").await?;
    let mut narrow = client.subscribe("demo.*.b").await?;
    for i in 0..3 {
        let receivers =
            client.publish(&format!("demo.{i}.b"), format!("hello {i}"), Headers::new()).await?;
        println!("published demo.{i}.b to {receivers} session(s)");
    }
    for _ in 0..3 {
        for (name, sub) in [("wide", &mut wide), ("narrow", &mut narrow)] {
            let message = tokio::time::timeout(Duration::from_secs(2), sub.next()).await?;
            if let Some(m) = message {
                println!("{name}: {} {:?}", m.topic, String::from_utf8_lossy(&m.data));
            }
        }
    }
    client.ping().await?;
    narrow.unsubscribe().await?;
    client.close().await;
    println!("closed: {:?}", client.state());
    Ok(())
}
