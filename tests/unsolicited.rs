//! `Session::next_unsolicited`: a reply nobody asked for (the lab's idle-timeout 421) reaches
//! an idle client, and cancelling the wait loses nothing.

#![allow(clippy::panic)] // test assertions

use std::time::Duration;

use smtptui::lab::{Lab, LabConfig, Profile};
use smtptui::session::Session;

#[tokio::test]
async fn idle_client_sees_the_servers_421() {
    let mut config = LabConfig::ephemeral(vec![Profile::Submission]);
    config.log = std::sync::Arc::new(|_| {});
    config.command_timeout = Duration::from_millis(600);
    let lab = Lab::start(config).await.expect("lab starts");
    let mut session_config = lab.client_config(Profile::Submission).expect("listener");
    session_config.timeout = Duration::from_secs(5);
    // As the interactive UI drives it: unasked replies are shown, not fatal.
    session_config.unasked = smtptui::session::UnaskedReplies::Show;
    let (mut session, greeting) = Session::connect(session_config, Box::new(|_| {}))
        .await
        .expect("connects");
    assert_eq!(greeting.code.value(), 220);
    // A wait cancelled before anything arrives must leave the session usable.
    let early = tokio::time::timeout(Duration::from_millis(50), session.next_unsolicited()).await;
    assert!(early.is_err(), "nothing should arrive this early");
    let reply = tokio::time::timeout(Duration::from_secs(5), session.next_unsolicited())
        .await
        .expect("the 421 arrives before the test deadline")
        .expect("a reply, not an error");
    assert_eq!(reply.code.value(), 421, "{}", reply.summary());
    lab.shutdown().await;
}
