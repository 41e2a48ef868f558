-- Client mode: a wrong argument type raises a Lua error naming the function.
print("before")
moonport.sleep("x")
print("after")
