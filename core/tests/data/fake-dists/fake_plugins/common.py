from ncmcp import Access, ToolSpec


async def handler(ctx):  # noqa: ANN001, ANN201
    return {}


def tool(name: str) -> ToolSpec:
    return ToolSpec(name=name, description="d", input_schema={"type": "object"}, output_schema=None, handler=handler,
                    access=Access.READ)
