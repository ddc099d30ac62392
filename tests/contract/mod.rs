//! The ports' contract suites: each case a function over the port's trait, for every
//! adapter to pass unchanged (`tests/contract_suites.rs` runs them on each).

pub mod access;
pub mod blobs;
pub mod metadata;

/// One `#[tokio::test]` per case of the suite `contract::$suite`, each on a store from
/// `$open` (an async function returning the store and whatever must live as long as it).
#[macro_export]
macro_rules! contract_cases {
    ($suite:ident, $open:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, _keep) = $open().await;
                $crate::contract::$suite::$case(store.as_ref()).await;
            }
        )+
    };
}
