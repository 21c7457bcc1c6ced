"""The deployment.toml fragments: written by tomli_w, parsed back with tomllib, values exactly as given (quotes,
backslashes, commas and all), arrays of tables written as [[...]] so they append to the products' own entries; the
removals name keys, never a table the product's own settings share."""
from __future__ import annotations

import tomllib

import pytest

from portal.services.sharing import wso2_config

AWKWARD = [
    'plain',
    'with "double" quotes',
    "with 'single' quotes",
    'back\\slash and \\"escaped\\"',
    'comma, separated, values',
    'CN=RootCA, OU=IAM, O="WSO2, Inc.", C=LK',
    'unicode é ✓ and a # hash',
    'trailing space ',
]


@pytest.mark.parametrize("value", AWKWARD)
def test_is_listener_round_trips(value):
    doc = wso2_config.is_listener(f"https://apim.example.com:9443{wso2_config.NOTIFY_PATH}", value, value,
                                  include_password=True)
    parsed = tomllib.loads(doc.toml)
    assert parsed == doc.data
    [listener] = parsed["event_listener"]
    assert listener == {
        "id": "tenant_creation",
        "type": "org.wso2.carbon.user.core.listener.UserOperationEventListener",
        "name": "org.wso2.carbon.identity.mgt.listener.TenantSyncListener",
        "order": 1,
        "enable": True,
        "properties": {"notification_endpoint": "https://apim.example.com:9443/internal/data/v1/notify",
                       "username": value, "password": value, "header.X-WSO2-KEY-MANAGER": "TENANT_MANAGEMENT"},
    }
    assert doc.toml.startswith("[[event_listener]]\n")
    assert "[event_listener.properties]" in doc.toml


@pytest.mark.parametrize("value", AWKWARD)
def test_apim_sharing_round_trips(value):
    url = "https://is.example.com:9444"
    doc = wso2_config.apim_sharing(url, value, value, auto_configure_key_manager=True,
                                   skip_create_resident_key_manager=True, include_password=True)
    parsed = tomllib.loads(doc.toml)
    assert parsed == doc.data
    assert parsed == {"apim": {
        "tenant_sharing": [{"type": "WSO2-IS-7", "properties": {
            "enable_tenant_sync": True, "username": value, "password": value, "identity_server_base_url": url,
            "auto_configure_key_manager": True}}],
        "key_manager": {"skip_create_resident_key_manager": True}}}
    lines = doc.toml.splitlines()
    assert "[[apim.tenant_sharing]]" in lines and "[apim.tenant_sharing.properties]" in lines
    assert "[apim.key_manager]" in lines
    assert "[apim]" not in lines  # a bare [apim] header would clash with the product's own tables


def test_without_skip_there_is_no_key_manager_table():
    doc = wso2_config.apim_sharing("https://is:9443", "admin", "pw", auto_configure_key_manager=False,
                                   skip_create_resident_key_manager=False)
    parsed = tomllib.loads(doc.toml)
    assert "key_manager" not in parsed["apim"]
    assert parsed["apim"]["tenant_sharing"][0]["properties"]["auto_configure_key_manager"] is False


def test_passwords_are_secure_vault_references_by_default():
    listener = tomllib.loads(wso2_config.is_listener("https://a/internal/data/v1/notify", "u", "s3cret!").toml)
    assert listener["event_listener"][0]["properties"]["password"] == "$secret{tenant_sync_apim_password}"
    sharing = tomllib.loads(wso2_config.apim_sharing("https://is", "u", "s3cret!", auto_configure_key_manager=False,
                                                     skip_create_resident_key_manager=False).toml)
    assert sharing["apim"]["tenant_sharing"][0]["properties"]["password"] == "$secret{tenant_sharing_is_password}"


def test_the_fragments_append_to_a_deployment_toml_that_already_has_entries():
    existing = ('[[event_listener]]\nid = "other"\ntype = "x"\nname = "y"\norder = 10\n\n'
                '[apim.key_manager]\nservice_url = "https://km:9443/services/"\n')
    listener = wso2_config.is_listener("https://apim:9443/internal/data/v1/notify", "admin", "pw")
    parsed = tomllib.loads(existing + "\n" + listener.toml)
    assert [entry["id"] for entry in parsed["event_listener"]] == ["other", "tenant_creation"]
    sharing = wso2_config.apim_sharing("https://is:9443", "admin", "pw", auto_configure_key_manager=False,
                                       skip_create_resident_key_manager=False)
    parsed = tomllib.loads(existing + "\n" + sharing.toml)
    assert parsed["apim"]["key_manager"]["service_url"] == "https://km:9443/services/"
    assert parsed["apim"]["tenant_sharing"][0]["type"] == "WSO2-IS-7"


def test_dotless_domains_turns_public_cloud_setup_off():
    doc = wso2_config.dotless_domains()
    assert tomllib.loads(doc.toml) == {"multi_tenancy": {"stratos": {"public_cloud_setup": False}}}
    # The same key as the docs' `[multi_tenancy] stratos.public_cloud_setup = false`.
    assert tomllib.loads("[multi_tenancy]\nstratos.public_cloud_setup = false\n") == tomllib.loads(doc.toml)


def test_joined_fragments_parse_as_one_document():
    sharing = wso2_config.apim_sharing("https://is:9443", "admin", "pw", auto_configure_key_manager=True,
                                       skip_create_resident_key_manager=True)
    text = wso2_config.join(sharing, wso2_config.dotless_domains(), wso2_config.Document(""))
    parsed = tomllib.loads(text)
    assert parsed["multi_tenancy"]["stratos"]["public_cloud_setup"] is False
    assert parsed["apim"]["key_manager"]["skip_create_resident_key_manager"] is True


def test_notify_endpoint_is_derived_from_the_api_manager_url():
    assert wso2_config.notify_endpoint("https://apim:9443/") == "https://apim:9443/internal/data/v1/notify"
    assert wso2_config.notify_endpoint("https://gw/prefix") == "https://gw/prefix/internal/data/v1/notify"


# --- IS 7 -> API Manager: the key manager half --------------------------------------------------------------------


@pytest.mark.parametrize("auto,skip", [(True, True), (False, True), (False, False)])
def test_apim_key_manager_keeps_sync_off_and_the_key_manager_on(auto, skip):
    url = 'https://is.example.com:9443/odd "path"'
    doc = wso2_config.apim_key_manager(url, auto_configure_key_manager=auto, skip_create_resident_key_manager=skip)
    parsed = tomllib.loads(doc.toml)
    assert parsed == doc.data
    expected: dict = {}
    if auto:
        expected["tenant_sharing"] = [{"type": "WSO2-IS-7", "properties": {
            "enable_tenant_sync": False, "identity_server_base_url": url, "auto_configure_key_manager": True}}]
    if skip:
        expected["key_manager"] = {"skip_create_resident_key_manager": True}
    assert parsed == ({"apim": expected} if expected else {})
    assert "username" not in doc.toml and "password" not in doc.toml  # read only with sync on
    if auto:
        assert "[[apim.tenant_sharing]]" in doc.toml.splitlines()


def _apply(document: dict, removal: wso2_config.Removal) -> None:
    """Do what a removal says to a parsed deployment.toml, as an administrator would."""
    path = removal.table.split(".")
    if removal.whole_entry:
        entries = document[path[0]]
        document[path[0]] = [e for e in entries if e.get("id") != wso2_config.LISTENER_ID]
        return
    if removal.entry:  # apim.tenant_sharing.properties of the WSO2-IS-7 entry
        entry = next(e for e in document["apim"]["tenant_sharing"] if e["type"] == "WSO2-IS-7")
        table = entry["properties"]
    else:
        table = document
        for part in path:
            table = table[part]
    for key in removal.keys:
        table.pop(key, None)


def test_removals_take_out_only_the_portals_keys():
    existing = tomllib.loads(
        '[[event_listener]]\nid = "other"\ntype = "x"\nname = "y"\norder = 10\n\n'
        + wso2_config.is_listener("https://apim:9443/internal/data/v1/notify", "u", "p").toml
        + '\n[apim.key_manager]\nservice_url = "https://km:9443/services/"\nskip_create_resident_key_manager = true\n'
        '\n[[apim.tenant_sharing]]\ntype = "WSO2-IS-7"\n[apim.tenant_sharing.properties]\nenable_tenant_sync = true\n'
        'username = "admin"\npassword = "admin"\nidentity_server_base_url = "https://is:9443"\n'
        'auto_configure_key_manager = true\ndcr_request_extension = "org.example.Ext"\n')
    removals = [wso2_config.listener_removal(), wso2_config.sharing_removal(()), wso2_config.skip_resident_removal()]
    for removal in removals:
        _apply(existing, removal)
    assert existing == {
        "event_listener": [{"id": "other", "type": "x", "name": "y", "order": 10}],
        "apim": {"key_manager": {"service_url": "https://km:9443/services/"},
                 "tenant_sharing": [{"type": "WSO2-IS-7",
                                     "properties": {"dcr_request_extension": "org.example.Ext"}}]}}


def test_removal_texts_name_keys_and_keep_shared_tables():
    skip = wso2_config.skip_resident_removal().text()
    assert skip.startswith("In [apim.key_manager]: remove skip_create_resident_key_manager")
    assert "Keep the table and its other keys." in skip
    sharing = wso2_config.sharing_removal(("enable_tenant_sync", "identity_server_base_url",
                                           "auto_configure_key_manager")).text()
    assert sharing.startswith('In [apim.tenant_sharing.properties] of the [[apim.tenant_sharing]] entry with '
                              'type = "WSO2-IS-7": remove username, password')
    assert "Keep the entry's other keys" in sharing
    assert wso2_config.sharing_removal(wso2_config.SHARING_PROPERTIES) is None
    listener = wso2_config.listener_removal().text()
    assert 'id = "tenant_creation"' in listener and "Keep every other entry" in listener
