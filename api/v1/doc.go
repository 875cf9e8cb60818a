// Package v1 holds the JSON wire types of Attic's /_api/v1 API (and Garret's
// additions), shared by the server in package api and the garret client. Field
// names and enum encodings follow Attic's serde output exactly, so stock attic
// clients and Garret's client interoperate with either server.
package v1
