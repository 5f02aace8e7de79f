"""The one request path to Microsoft Graph: authentication, transport, paging."""
