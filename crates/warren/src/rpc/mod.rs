//! `warren rpc`: call a warren-rpc service from the shell, and list the running services.
//!
//! `warren rpc call Inventory reserve '{"sku": "A-1", "qty": 2}'` prints the method's result
//! as JSON; a typed error of the method is printed to stderr (exit status 1), as are the
//! RPC layer's errors (unknown method, deadline, no such service, …).
//! `warren rpc services` lists services with their live instances (discovery ping).
//! Works against Warren or any RabbitMQ-compatible broker.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::time::Duration;
use warren_rpc::{CallOptions, Client, ClientConfig, Envelope, Format, RetryPolicy};

#[derive(Args)]
pub struct RpcArgs {
    /// The broker's AMQP URL
    #[arg(
        long,
        env = "WARREN_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2F",
        global = true
    )]
    url: String,
    #[command(subcommand)]
    command: RpcCommand,
}

#[derive(Subcommand)]
enum RpcCommand {
    /// Call METHOD of SERVICE with a JSON object of named arguments; print the result.
    Call(CallArgs),
    /// List running services and their live instances.
    Services(ServicesArgs),
}

#[derive(Args)]
struct CallArgs {
    service: String,
    method: String,
    /// Arguments as a JSON object keyed by parameter name
    #[arg(default_value = "{}")]
    args: String,
    /// How long to wait for the reply, milliseconds
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Send the request as MessagePack (the reply comes back in it too)
    #[arg(long)]
    msgpack: bool,
}

#[derive(Args)]
struct ServicesArgs {
    /// How long to collect the instances' answers, milliseconds
    #[arg(long, default_value_t = 500)]
    window_ms: u64,
}

pub fn run(args: RpcArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let client = Client::connect_with(&args.url, ClientConfig::default())
            .await
            .with_context(|| format!("cannot connect to {}", args.url))?;
        let outcome = match args.command {
            RpcCommand::Call(call) => run_call(&client, call).await,
            RpcCommand::Services(s) => run_services(&client, s).await,
        };
        client.close().await;
        outcome
    })
}

async fn run_call(client: &Client, call: CallArgs) -> anyhow::Result<()> {
    let args: serde_json::Value = serde_json::from_str(&call.args)
        .with_context(|| format!("the arguments are not JSON: {}", call.args))?;
    if !args.is_object() {
        bail!("the arguments must be a JSON object keyed by parameter name, e.g. '{{\"sku\": \"A-1\"}}'");
    }
    let format = if call.msgpack {
        Format::MessagePack
    } else {
        Format::Json
    };
    let options = CallOptions {
        deadline: Duration::from_millis(call.timeout_ms),
        retry: RetryPolicy::none(),
        format,
        ..CallOptions::default()
    };
    let body = format.encode(&args).map_err(anyhow::Error::msg)?;
    let reply = client
        .with_options(options)
        .call_raw(&call.service, &call.method, &body)
        .await?;
    let envelope: Envelope<serde_json::Value, serde_json::Value> = reply
        .format
        .decode(&reply.body)
        .map_err(|e| anyhow::anyhow!("cannot decode the reply: {e}"))?;
    match envelope {
        Envelope::Ok(value) => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        Envelope::Err(error) => bail!(
            "{}.{} returned an error: {}",
            call.service,
            call.method,
            error
        ),
        Envelope::Fault(fault) => bail!("{}.{}: {}", call.service, call.method, fault.message),
    }
}

async fn run_services(client: &Client, args: ServicesArgs) -> anyhow::Result<()> {
    let services = client
        .discover(Duration::from_millis(args.window_ms))
        .await?;
    if services.is_empty() {
        println!("no services answered within {} ms", args.window_ms);
        return Ok(());
    }
    println!(
        "{:<24} {:>9} {:>9}  METHODS (* = idempotent)",
        "SERVICE", "INSTANCES", "IN FLIGHT"
    );
    for s in services {
        let in_flight: u32 = s.instances.iter().map(|i| i.in_flight).sum();
        let capacity: u32 = s.instances.iter().map(|i| u32::from(i.concurrency)).sum();
        let methods: Vec<String> = s
            .methods()
            .iter()
            .map(|m| format!("{}{}", m.name, if m.idempotent { "*" } else { "" }))
            .collect();
        let load = format!("{in_flight}/{capacity}");
        println!(
            "{:<24} {:>9} {:>9}  {}",
            s.name,
            s.instances.len(),
            load,
            methods.join(", ")
        );
    }
    Ok(())
}
