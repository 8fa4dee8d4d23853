//! `porter users ...` and `porter permissions ...`: the broker's users, their tags and their
//! permissions per virtual host, through `/api/users` and `/api/permissions`.

use serde_json::{json, Value};

use super::args::{Output, PermissionsCommand, UsersCommand};
use super::client::{segment, Client, Failure};
use super::commands::done;
use super::table::of_items;
use super::Printed;

pub fn users(client: &Client, out: Output, command: UsersCommand) -> Result<Printed, Failure> {
    match command {
        UsersCommand::List => {
            let users = client.get("/api/users")?;
            Ok(Printed::choose(out, users, |u| {
                let rows: Vec<Value> = u
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|u| {
                        let tags: Vec<&str> = u["tags"]
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or_default()
                            .iter()
                            .filter_map(Value::as_str)
                            .collect();
                        json!({"name": u["name"], "tags": tags.join(","),
                               "password": !u["password_hash"].as_str().unwrap_or("").is_empty(),
                               "loopback_only": u["loopback_only"]})
                    })
                    .collect();
                of_items(
                    &[
                        ("USER", "name"),
                        ("TAGS", "tags"),
                        ("PASSWORD", "password"),
                        ("LOOPBACK-ONLY", "loopback_only"),
                    ],
                    &Value::Array(rows),
                )
            }))
        }
        UsersCommand::Add {
            name,
            password,
            tags,
        } => {
            client.put(
                &format!("/api/users/{}", segment(&name)),
                &json!({"password": password, "tags": tags}),
            )?;
            Ok(done(out, format!("user {name} saved")))
        }
        UsersCommand::SetPassword { name, password } => {
            let user = client.get(&format!("/api/users/{}", segment(&name)))?;
            client.put(
                &format!("/api/users/{}", segment(&name)),
                &json!({"password": password, "tags": user["tags"]}),
            )?;
            Ok(done(out, format!("password of {name} changed")))
        }
        UsersCommand::SetTags { name, tags } => {
            client.get(&format!("/api/users/{}", segment(&name)))?;
            client.put(
                &format!("/api/users/{}", segment(&name)),
                &json!({ "tags": tags }),
            )?;
            Ok(done(out, format!("tags of {name} changed")))
        }
        UsersCommand::Delete { name } => {
            client.delete(&format!("/api/users/{}", segment(&name)))?;
            Ok(done(out, format!("user {name} deleted")))
        }
        UsersCommand::SetAccessSecret { name, secret } => {
            let path = format!("/api/users/{}/access-secret", segment(&name));
            let pair = client.put(&path, &json!({ "secret": secret }))?;
            Ok(Printed::choose(out, pair, |p| {
                format!(
                    "AccessKey: {}\nSecretKey: {}",
                    p["access_key"].as_str().unwrap_or_default(),
                    p["secret_key"].as_str().unwrap_or_default()
                )
            }))
        }
        UsersCommand::SetLimit { name, limit, value } => {
            let path = format!("/api/user-limits/{}/{}", segment(&name), segment(&limit));
            if value < 0 {
                client.delete(&path)?;
            } else {
                client.put(&path, &json!({ "value": value }))?;
            }
            Ok(done(out, format!("{limit} of {name} set")))
        }
        UsersCommand::CreateToken {
            token_name,
            expires_in_secs,
        } => {
            let body = json!({"name": token_name, "expires_in_secs": expires_in_secs});
            let made = client.post("/api/tokens", &body)?;
            Ok(Printed::choose(out, made, |t| {
                t["token"].as_str().unwrap_or_default().to_string()
            }))
        }
        UsersCommand::Tokens => {
            let tokens = client.get("/api/tokens")?;
            Ok(Printed::choose(out, tokens, |t| {
                of_items(
                    &[
                        ("NAME", "name"),
                        ("CREATED_MS", "created_ms"),
                        ("EXPIRES_MS", "expires_ms"),
                    ],
                    t,
                )
            }))
        }
        UsersCommand::DeleteToken { token_name } => {
            client.delete(&format!("/api/tokens/{}", segment(&token_name)))?;
            Ok(done(out, format!("token {token_name} deleted")))
        }
        UsersCommand::ClearAccessSecret { name } => {
            client.delete(&format!("/api/users/{}/access-secret", segment(&name)))?;
            Ok(done(out, format!("access secret of {name} removed")))
        }
    }
}

pub fn permissions(
    client: &Client,
    out: Output,
    vhost: &str,
    command: PermissionsCommand,
) -> Result<Printed, Failure> {
    match command {
        PermissionsCommand::List => {
            let permissions = client.get("/api/permissions")?;
            Ok(Printed::choose(out, permissions, |p| {
                of_items(
                    &[
                        ("USER", "user"),
                        ("VHOST", "vhost"),
                        ("CONFIGURE", "configure"),
                        ("WRITE", "write"),
                        ("READ", "read"),
                    ],
                    p,
                )
            }))
        }
        PermissionsCommand::Set {
            user,
            configure,
            write,
            read,
        } => {
            client.put(
                &format!("/api/permissions/{vhost}/{}", segment(&user)),
                &json!({"configure": configure, "write": write, "read": read}),
            )?;
            Ok(done(out, format!("permissions of {user} set")))
        }
        PermissionsCommand::Clear { user } => {
            client.delete(&format!("/api/permissions/{vhost}/{}", segment(&user)))?;
            Ok(done(out, format!("permissions of {user} cleared")))
        }
        PermissionsCommand::ListTopic => {
            let permissions = client.get("/api/topic-permissions")?;
            Ok(Printed::choose(out, permissions, |p| {
                of_items(
                    &[
                        ("USER", "user"),
                        ("VHOST", "vhost"),
                        ("EXCHANGE", "exchange"),
                        ("WRITE", "write"),
                        ("READ", "read"),
                    ],
                    p,
                )
            }))
        }
        PermissionsCommand::SetTopic {
            user,
            exchange,
            write,
            read,
        } => {
            client.put(
                &format!("/api/topic-permissions/{vhost}/{}", segment(&user)),
                &json!({"exchange": exchange, "write": write, "read": read}),
            )?;
            Ok(done(
                out,
                format!("topic permission of {user} on {exchange} set"),
            ))
        }
        PermissionsCommand::ClearTopic { user, exchange } => {
            let mut path = format!("/api/topic-permissions/{vhost}/{}", segment(&user));
            if let Some(exchange) = &exchange {
                path = format!("{path}/{}", segment(exchange));
            }
            client.delete(&path)?;
            Ok(done(out, format!("topic permissions of {user} cleared")))
        }
    }
}
