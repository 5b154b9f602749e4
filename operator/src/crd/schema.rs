//! Fix-ups of the derived CRD schemas for what a real API server expects, applied once in
//! [`crds()`](super::crds) so every consumer (`kamera-operator crd`, `crds/`, the chart, tests)
//! sees the same schema. Pure functions over the typed `JSONSchemaProps`.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// The `format`s the API server knows (k8s.io/apiextensions-apiserver's supported formats).
/// Any other format (schemars writes `uint8`, `uint32`, ...) makes every apply print a warning.
pub const KNOWN_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "date",
    "date-time",
    "datetime",
    "duration",
    "password",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "bsonobjectid",
];

/// Applies every fix-up to each version's `openAPIV3Schema`.
pub fn finish_crd(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        if let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            declare_metadata_name(root);
            strip_unknown_formats(root);
        }
    }
    crd
}

/// Declares `metadata.name` in the root schema. Root rules about the name need it: the API server
/// accepts `fieldPath: .metadata.name` only for a field of the structural schema, and allows a
/// CRD to declare `name` and `generateName` under `metadata` (and nothing else).
pub fn declare_metadata_name(root: &mut JSONSchemaProps) {
    let string = JSONSchemaProps {
        type_: Some("string".to_string()),
        ..Default::default()
    };
    let metadata = JSONSchemaProps {
        type_: Some("object".to_string()),
        properties: Some(BTreeMap::from([("name".to_string(), string)])),
        ..Default::default()
    };
    root.properties
        .get_or_insert_with(BTreeMap::new)
        .insert("metadata".to_string(), metadata);
}

/// Removes every `format` the API server does not know, at every depth of the schema.
pub fn strip_unknown_formats(schema: &mut JSONSchemaProps) {
    for_each_schema(schema, &mut |s| {
        if s.format
            .as_deref()
            .is_some_and(|f| !KNOWN_FORMATS.contains(&f))
        {
            s.format = None;
        }
    });
}

/// Calls `f` on `schema` and on every schema nested in it (properties, items, additional
/// properties, `allOf`/`anyOf`/`oneOf`/`not`). A property *named* `format` is a schema, never
/// mistaken for the keyword.
pub fn for_each_schema(schema: &mut JSONSchemaProps, f: &mut impl FnMut(&mut JSONSchemaProps)) {
    f(schema);
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        for_each_schema(child, f);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => for_each_schema(item, f),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            for item in items {
                for_each_schema(item, f);
            }
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        for_each_schema(extra, f);
    }
    for branch in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of]
        .into_iter()
        .flatten()
        .flatten()
    {
        for_each_schema(branch, f);
    }
    if let Some(not) = schema.not.as_mut() {
        for_each_schema(not, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::crds;

    fn root(crd: &CustomResourceDefinition) -> JSONSchemaProps {
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.clone())
            .expect("CRD has a schema")
    }

    #[test]
    fn no_unknown_format_remains_in_any_crd() {
        for crd in crds() {
            let mut schema = root(&crd);
            let mut formats = Vec::new();
            for_each_schema(&mut schema, &mut |s| formats.extend(s.format.clone()));
            let unknown: Vec<_> = formats
                .iter()
                .filter(|f| !KNOWN_FORMATS.contains(&f.as_str()))
                .collect();
            assert!(
                unknown.is_empty(),
                "{}: {unknown:?}",
                crd.metadata.name.unwrap_or_default()
            );
            // Known formats stay: the walk reached the schema and kept what the server uses.
            assert!(formats.iter().any(|f| f == "double"), "{formats:?}");
        }
    }

    #[test]
    fn unknown_formats_go_at_every_depth_and_a_property_named_format_stays() {
        let leaf = |format: &str| JSONSchemaProps {
            format: Some(format.to_string()),
            ..Default::default()
        };
        let mut schema = JSONSchemaProps {
            properties: Some(BTreeMap::from([
                ("format".to_string(), leaf("uint8")),
                (
                    "list".to_string(),
                    JSONSchemaProps {
                        items: Some(JSONSchemaPropsOrArray::Schema(Box::new(leaf("uint32")))),
                        ..Default::default()
                    },
                ),
                (
                    "map".to_string(),
                    JSONSchemaProps {
                        additional_properties: Some(JSONSchemaPropsOrBool::Schema(Box::new(leaf(
                            "int64",
                        )))),
                        ..Default::default()
                    },
                ),
            ])),
            any_of: Some(vec![leaf("uint16")]),
            ..Default::default()
        };
        strip_unknown_formats(&mut schema);
        let props = schema.properties.expect("properties");
        assert_eq!(props["format"].format, None);
        assert!(props.contains_key("format"));
        let Some(JSONSchemaPropsOrArray::Schema(item)) = &props["list"].items else {
            panic!("items kept");
        };
        assert_eq!(item.format, None);
        let Some(JSONSchemaPropsOrBool::Schema(value)) = &props["map"].additional_properties else {
            panic!("additionalProperties kept");
        };
        assert_eq!(value.format.as_deref(), Some("int64"));
        assert_eq!(schema.any_of.expect("anyOf")[0].format, None);
    }

    #[test]
    fn root_schemas_declare_only_metadata_name() {
        for crd in crds() {
            let schema = root(&crd);
            let metadata = &schema.properties.expect("properties")["metadata"];
            assert_eq!(metadata.type_.as_deref(), Some("object"));
            let props = metadata.properties.as_ref().expect("metadata properties");
            assert_eq!(props.keys().collect::<Vec<_>>(), ["name"]);
            assert_eq!(props["name"].type_.as_deref(), Some("string"));
        }
    }
}
