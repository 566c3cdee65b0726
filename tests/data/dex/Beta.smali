.class public Lcom/example/Beta;
.super Lcom/example/Alpha;

.method public constructor <init>()V
    .registers 1
    invoke-direct {p0}, Lcom/example/Alpha;-><init>()V
    return-void
.end method

.method public static count(I)I
    .registers 3
    const/4 v0, 0x0

    :loop
    if-lez p0, :done
    add-int/lit8 v0, v0, 0x1
    add-int/lit8 p0, p0, -0x1
    goto :loop

    :done
    return v0
.end method
