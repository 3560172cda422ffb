"""The test API behind the MCP bridge: a small pet store over real HTTP (aiohttp).

`python petstore_api.py PORT KEY` serves `conf/mcp-petstore.openapi.json` on 127.0.0.1:PORT.
Every call must carry `X-Api-Key: KEY` (the gateway's stored credential); each request is
recorded, and `GET /_requests` returns the record (what reached the API, with the
`authorization` header it carried, if any) so tests can check what the gateway sent.
"""

import sys

from aiohttp import web

PETS = {1: {"id": 1, "name": "Rex", "tag": "dog"}, 2: {"id": 2, "name": "Tom", "tag": "cat"}, 3: {"id": 3, "name": "Kit", "tag": "cat"}}
SEEN = []


def main():
    port, key = int(sys.argv[1]), sys.argv[2]

    @web.middleware
    async def record(request, handler):
        if request.path == "/_requests":
            return await handler(request)
        body = await request.text()
        SEEN.append({
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "query": request.query_string,
            "x_api_key": request.headers.get("X-Api-Key"),
            "authorization": request.headers.get("Authorization"),
            "x_trace_id": request.headers.get("X-Trace-Id"),
            "x_user": request.headers.get("X-User"),
            "body": body,
        })
        if request.headers.get("X-Api-Key") != key:
            return web.json_response({"error": "bad key"}, status=401)
        return await handler(request)

    async def list_pets(request):
        pets = list(PETS.values())
        if tag := request.query.get("tag"):
            pets = [p for p in pets if p["tag"] == tag]
        if limit := request.query.get("limit"):
            pets = pets[: int(limit)]
        return web.json_response(pets)

    async def add_pet(request):
        new = await request.json()
        if not isinstance(new.get("name"), str):
            return web.json_response({"error": "name is required"}, status=422)
        pet = {"id": max(PETS) + 1, "name": new["name"], "tag": new.get("tag", "")}
        PETS[pet["id"]] = pet
        return web.json_response(pet, status=201)

    async def get_pet(request):
        try:
            pet = PETS.get(int(request.match_info["petId"]))
        except ValueError:
            pet = None
        if pet is None:
            return web.json_response({"error": "no such pet"}, status=404)
        return web.json_response(pet)

    async def delete_pet(request):
        PETS.pop(int(request.match_info["petId"]), None)
        return web.Response(status=204)

    async def requests_seen(_request):
        return web.json_response(SEEN)

    app = web.Application(middlewares=[record])
    app.add_routes([
        web.get("/pets", list_pets),
        web.post("/pets", add_pet),
        web.get("/pets/{petId}", get_pet),
        web.delete("/pets/{petId}", delete_pet),
        web.get("/_requests", requests_seen),
    ])
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
