//! The raw bindings generated from `wit/policy.wit`. Policy authors never need these directly: the
//! rest of the SDK wraps them in types with helpers, and `export_policy!` wires a `Policy` to them.

wit_bindgen::generate!({
    path: "../wit",
    world: "policy",
    pub_export_macro: true,
    export_macro_name: "__export_policy_world",
    default_bindings_module: "switchyard_sdk::bindings",
    additional_derives: [PartialEq],
});
