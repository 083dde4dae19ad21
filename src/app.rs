//! (Foundation: in progress.)
pub async fn run() {}
