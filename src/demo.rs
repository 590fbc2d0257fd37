//! Demo data: realistic, coherent events of all 15 known types. The same users sign up, log in,
//! view pages, use features, order, pay, get notified, convert and log out; some change plans or
//! leave; the system reports its health, errors and configuration changes along the way.

use serde_json::{Value, json};

use crate::dice::Dice;

/// Events a user's journey goes through, in order, before it starts again at `user.login`.
const JOURNEY: usize = 12;
/// One event in this many is a system event.
const SYSTEM_EVERY: u64 = 10;
/// One event in this many is a user leaving (and a new one signing up in their place).
const CHURN_EVERY: u64 = 45;

/// Where one user is in their journey.
struct User {
    id: String,
    stage: usize,
    session: String,
    order: String,
    total: f64,
}

/// `count` events in the simple JSON form (`type`, `source`, `data`, `metadata`), telling one
/// coherent story for `seed`.
pub fn events(count: usize, seed: u64) -> Vec<Value> {
    let mut dice = Dice::new(seed);
    let mut next_user = 0;
    let mut new_user = |dice: &mut Dice| {
        next_user += 1;
        User {
            id: format!("usr_{:04}{}", next_user, dice.below(100)),
            stage: 0,
            session: String::new(),
            order: String::new(),
            total: 0.0,
        }
    };
    let mut users: Vec<User> = (0..(count / 25).clamp(3, 50))
        .map(|_| new_user(&mut dice))
        .collect();
    let mut out = Vec::with_capacity(count);
    for n in 0..count as u64 {
        let event = if n % SYSTEM_EVERY == SYSTEM_EVERY - 1 {
            system_event(n / SYSTEM_EVERY, &mut dice)
        } else if n % CHURN_EVERY == CHURN_EVERY - 1 {
            let slot = dice.below(users.len() as u64) as usize;
            let leaving = std::mem::replace(&mut users[slot], new_user(&mut dice));
            user_event(
                "user.deleted",
                &leaving.id,
                json!({"user_id": leaving.id, "reason": dice.pick(&["too expensive", "switched provider", "no longer needed"])}),
            )
        } else {
            let slot = dice.below(users.len() as u64) as usize;
            step(&mut users[slot], &mut dice)
        };
        out.push(event);
    }
    out
}

/// The next event of `user`'s journey.
fn step(user: &mut User, dice: &mut Dice) -> Value {
    let id = user.id.clone();
    let (event_type, data) = match user.stage {
        0 => (
            "user.created",
            json!({"user_id": id, "email": format!("{id}@example.com"),
                                     "username": id.replace("usr_", "user"), "plan": "free"}),
        ),
        1 => {
            user.session = format!("sess_{:08x}", dice.roll() as u32);
            (
                "user.login",
                json!({"user_id": id, "session_id": user.session, "method": dice.pick(&["password", "google", "sso"]),
                                  "ip_address": format!("203.0.113.{}", dice.below(250) + 1),
                                  "user_agent": dice.pick(&["Mozilla/5.0 (Macintosh)", "Mozilla/5.0 (Windows NT 10.0)", "EventFlowApp/2.1 (iOS)"])}),
            )
        }
        2 => (
            "page.view",
            json!({"url": "/pricing", "title": "Pricing", "user_id": id, "session_id": user.session,
                                  "referrer": dice.pick(&["https://www.google.com/", "https://news.ycombinator.com/", "/"]),
                                  "duration_ms": 2_000 + dice.below(40_000)}),
        ),
        3 => (
            "feature.used",
            json!({"feature": dice.pick(&["search", "export", "dashboard", "alerts"]), "user_id": id,
                                     "action": "open", "properties": {"session_id": user.session}}),
        ),
        4 => (
            "page.view",
            json!({"url": "/checkout", "title": "Checkout", "user_id": id, "session_id": user.session,
                                  "referrer": "/pricing", "duration_ms": 1_000 + dice.below(20_000)}),
        ),
        5 => {
            user.order = format!("ord_{:08x}", dice.roll() as u32);
            let quantity = 1 + dice.below(3);
            let price = [19.0, 49.0, 99.0][dice.below(3) as usize];
            user.total = price * quantity as f64;
            (
                "order.created",
                json!({"order_id": user.order, "user_id": id, "currency": "EUR", "total": user.total,
                                     "items": [{"sku": format!("plan-{price}"), "quantity": quantity, "price": price}]}),
            )
        }
        6 => (
            "payment.completed",
            json!({"payment_id": format!("pay_{:08x}", dice.roll() as u32), "amount": user.total,
                                          "currency": "EUR", "order_id": user.order, "user_id": id,
                                          "method": dice.pick(&["card", "paypal", "sepa"])}),
        ),
        7 => (
            "notification.sent",
            json!({"notification_id": format!("ntf_{:08x}", dice.roll() as u32),
                                          "channel": dice.pick(&["email", "push", "sms"]), "user_id": id,
                                          "template": "order_confirmation"}),
        ),
        8 => (
            "order.updated",
            json!({"order_id": user.order, "status": "shipped", "previous_status": "paid", "user_id": id}),
        ),
        9 => (
            "conversion.tracked",
            json!({"goal": "purchase", "user_id": id, "value": user.total, "currency": "EUR",
                                           "campaign": dice.pick(&["spring-sale", "newsletter", "organic"])}),
        ),
        10 => (
            "user.updated",
            json!({"user_id": id, "changes": {"plan": dice.pick(&["pro", "team"])}}),
        ),
        _ => (
            "user.logout",
            json!({"user_id": id, "session_id": user.session,
                                    "session_duration_seconds": 60 + dice.below(3_000)}),
        ),
    };
    // After logging out, the next visit starts at the login.
    user.stage = if user.stage + 1 >= JOURNEY {
        1
    } else {
        user.stage + 1
    };
    user_event(event_type, &id, data)
}

/// An event about a user, ordered by the user (partition key) and correlated by session.
fn user_event(event_type: &str, user_id: &str, data: Value) -> Value {
    let source = if event_type.starts_with("page.") || event_type.starts_with("feature.") {
        "web-app"
    } else {
        "api"
    };
    json!({"type": event_type, "source": source, "data": data,
           "metadata": {"partition_key": user_id}})
}

/// The `round`-th system event: health checks, with an error or a configuration change now and then.
fn system_event(round: u64, dice: &mut Dice) -> Value {
    let service = dice.pick(&["api", "worker", "billing", "search"]);
    let (event_type, data, priority) = match round % 5 {
        3 => (
            "system.error",
            json!({"message": "upstream timed out", "service": service, "code": "E_TIMEOUT",
                                      "severity": dice.pick(&["warning", "error"])}),
            "high",
        ),
        4 => (
            "system.config_changed",
            json!({"key": "rate_limit_per_sec", "old_value": 100, "new_value": 100 + 50 * (round % 4),
                                               "changed_by": "ops@example.com"}),
            "normal",
        ),
        _ => (
            "system.health_check",
            json!({"service": service, "status": "healthy",
                                             "latency_ms": 1.0 + dice.below(40) as f64}),
            "low",
        ),
    };
    json!({"type": event_type, "source": "monitor", "data": data, "metadata": {"priority": priority}})
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::schemas::{built_in_types, compile, violations};

    #[test]
    fn a_demo_covers_every_known_type_with_valid_payloads() {
        let events = events(500, 7);
        assert_eq!(events.len(), 500);
        let types: BTreeSet<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(types.len(), 15, "{types:?}");
        let schemas = built_in_types();
        for event in &events {
            let event_type = event["type"].as_str().unwrap();
            let validator = compile(&schemas[event_type].schema).expect("a built-in schema");
            let broken = violations(&validator, &event["data"]);
            assert!(broken.is_empty(), "{event}: {broken:?}");
        }
    }

    #[test]
    fn the_same_seed_tells_the_same_story() {
        assert_eq!(events(50, 3), events(50, 3));
        assert_ne!(events(50, 3), events(50, 4));
    }
}
