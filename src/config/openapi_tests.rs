//! OpenAPI documents into tools: schemas, references, filters and errors.

use super::*;

const DOC: &str = r##"{
  "openapi": "3.1.0",
  "paths": {
    "/pets/{petId}": {
      "parameters": [{"name": "petId", "in": "path", "required": true, "schema": {"type": "integer"}}],
      "get": {"operationId": "getPet", "summary": "One pet",
        "parameters": [{"name": "X-Trace", "in": "header", "schema": {"type": "string"}}],
        "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}}
    },
    "/pets": {
      "get": {"parameters": [{"$ref": "#/components/parameters/Limit"}],
        "responses": {"200": {"content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}}}}},
      "post": {"operationId": "addPet", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
        "responses": {"201": {"description": "made"}}}
    }
  },
  "components": {
    "parameters": {"Limit": {"name": "limit", "in": "query", "schema": {"type": "integer"}}},
    "schemas": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}, "friend": {"$ref": "#/components/schemas/Pet"}}}}
  }
}"##;

#[test]
fn operations_become_tools_with_resolved_schemas() {
    let tools = tools(DOC, &[], &[]).unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["get_pets", "addPet", "getPet"]);
    let get = &tools[2];
    assert_eq!(get.input_schema["properties"]["petId"]["type"], "integer");
    assert_eq!(get.input_schema["required"], json!(["petId"]));
    assert_eq!(get.operation.params.len(), 2);
    let out = get.output_schema.as_ref().unwrap();
    assert_eq!(out["properties"]["name"]["type"], "string");
    // A reference back into itself stops there.
    assert_eq!(out["properties"]["friend"], json!({}));
    assert!(!get.wraps_output);
    let list = &tools[0];
    assert!(list.wraps_output);
    assert_eq!(list.input_schema["properties"]["limit"]["type"], "integer");
    let add = &tools[1];
    // An object body's properties are arguments of their own (none of Pet's is required).
    assert_eq!(add.input_schema["properties"]["name"]["type"], "string");
    assert!(add.input_schema["properties"].get("friend").is_some());
    assert!(add.input_schema["properties"].get("body").is_none());
    assert!(add.input_schema.get("required").is_none());
    assert!(add.operation.body.as_ref().unwrap().required);
    assert!(add.output_schema.is_none());
}

#[test]
fn body_properties_are_flat_arguments_unless_they_collide_or_the_body_is_not_an_object() {
    let doc = r#"{"openapi": "3.1.0", "paths": {
        "/items": {"post": {"operationId": "add",
            "parameters": [{"name": "name", "in": "query", "schema": {"type": "string"}}],
            "requestBody": {"required": true, "content": {"application/json": {"schema":
                {"type": "object", "required": ["name", "size"],
                 "properties": {"name": {"type": "string"}, "size": {"type": "integer"}}}}}}}},
        "/bulk": {"post": {"operationId": "bulk",
            "requestBody": {"content": {"application/json": {"schema":
                {"type": "array", "items": {"type": "string"}}}}}}}
    }}"#;
    let tools = tools(doc, &[], &[]).unwrap();
    let named = |n: &str| &tools.iter().find(|t| t.name == n).unwrap().input_schema;
    let add = named("add");
    let mut names: Vec<&String> = add["properties"].as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["body_name", "name", "size"]);
    assert_eq!(add["required"], json!(["body_name", "size"]));
    let bulk = named("bulk");
    assert_eq!(bulk["properties"]["body"]["type"], "array");
}

#[test]
fn include_exclude_and_errors_name_what_is_wrong() {
    assert_eq!(tools(DOC, &["getPet".into()], &[]).unwrap().len(), 1);
    assert_eq!(tools(DOC, &[], &["get_pets".into()]).unwrap().len(), 2);
    assert!(tools(DOC, &["nope".into()], &[])
        .unwrap_err()
        .contains("nope"));
    assert!(tools(r#"{"openapi": "2.0", "paths": {}}"#, &[], &[])
        .unwrap_err()
        .contains("2.0"));
    let external = DOC.replace("#/components/parameters/Limit", "other.json#/x");
    assert!(tools(&external, &[], &[]).unwrap_err().contains("outside"));
    assert_eq!(tool_name("/pets/{id}: get!"), "pets_id_get");
}

#[test]
fn references_that_multiply_are_refused_not_expanded() {
    let mut defs = String::new();
    for i in 0..12 {
        let next = format!("{{\"$ref\": \"#/d/l{}\"}}", i + 1);
        defs.push_str(&format!("\"l{i}\": [{}],", vec![next; 8].join(",")));
    }
    let doc = format!(
        r##"{{"openapi": "3.1.0", "d": {{{defs} "l12": 1}}, "paths": {{"/x": {{"get": {{
            "responses": {{"200": {{"content": {{"application/json": {{"schema": {{"$ref": "#/d/l0"}}}}}}}}}}}}}}}}}}"##
    );
    let e = tools(&doc, &[], &[]).err().unwrap();
    assert!(e.contains("more than"), "{e}");
}

#[test]
fn nullable_in_3_0_becomes_a_type_union() {
    let doc = DOC.replace("3.1.0", "3.0.3").replace(
        r#""name": {"type": "string"}"#,
        r#""name": {"type": "string", "nullable": true}"#,
    );
    let tools = tools(&doc, &["getPet".into()], &[]).unwrap();
    let out = tools[0].output_schema.as_ref().unwrap();
    assert_eq!(out["properties"]["name"]["type"], json!(["string", "null"]));
}

#[test]
fn a_yaml_document_gives_the_same_tools_as_its_json() {
    let value: Value = serde_json::from_str(DOC).unwrap();
    let yaml = yaml_serde::to_string(&value).unwrap();
    assert!(!yaml.trim_start().starts_with('{'));
    let (from_json, from_yaml) = (
        tools(DOC, &[], &[]).unwrap(),
        tools(&yaml, &[], &[]).unwrap(),
    );
    assert_eq!(from_json.len(), from_yaml.len());
    for (j, y) in from_json.iter().zip(&from_yaml) {
        assert_eq!(j.name, y.name);
        assert_eq!(j.input_schema, y.input_schema);
        assert_eq!(j.output_schema, y.output_schema);
    }
    let err = tools("openapi: [unclosed", &[], &[]).unwrap_err();
    assert!(err.contains("neither JSON nor valid YAML"), "{err}");
    let err = tools("{\"openapi\": ", &[], &[]).unwrap_err();
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn x_mcp_fields_name_describe_and_hide_operations() {
    let yaml = r#"
openapi: "3.0.3"
paths:
  /orders/{id}:
    get:
      operationId: getOrderV2
      x-mcp-name: order lookup
      x-mcp-description: Look up one order by its id.
      summary: internal summary the model should not see
      parameters:
        - name: id
          in: path
          required: true
          description: database key
          x-mcp-description: The order number printed on the receipt.
          schema: {type: string}
      responses: {"200": {description: ok}}
    delete:
      operationId: deleteOrder
      x-mcp-ignore: true
      responses: {"204": {description: gone}}
"#;
    let tools = tools(yaml, &[], &[]).unwrap();
    assert_eq!(tools.len(), 1, "x-mcp-ignore leaves deleteOrder out");
    let t = &tools[0];
    assert_eq!(t.name, "order_lookup");
    assert_eq!(t.description, "Look up one order by its id.");
    assert_eq!(
        t.input_schema["properties"]["id"]["description"],
        "The order number printed on the receipt."
    );
}
