.class public Lcom/example/Alpha;
.super Ljava/lang/Object;
.implements Ljava/lang/Runnable;
.source "Alpha.java"

.annotation runtime Ljava/lang/Deprecated;
.end annotation

.field public static final NAME:Ljava/lang/String; = "alpha"

.field public static COUNT:I = 0x7

.field private value:I
    .annotation runtime Ljava/lang/Deprecated;
    .end annotation
.end field

.field private other:Lcom/example/Alpha;

.method public constructor <init>()V
    .registers 1
    invoke-direct {p0}, Ljava/lang/Object;-><init>()V
    return-void
.end method

.method public run()V
    .annotation runtime Ljava/lang/Deprecated;
    .end annotation
    .registers 8
    const-string v0, "hello"
    const-string/jumbo v1, "world"
    const-class v2, Ljava/lang/String;
    check-cast v2, Ljava/lang/Class;
    instance-of v3, p0, Lcom/example/Alpha;
    new-instance v4, Ljava/lang/StringBuilder;
    invoke-direct {v4}, Ljava/lang/StringBuilder;-><init>()V
    const/4 v5, 0x3
    new-array v6, v5, [I
    filled-new-array {v5, v5}, [I
    move-result-object v6
    filled-new-array/range {v0 .. v1}, [Ljava/lang/String;
    move-result-object v7
    fill-array-data v6, :array_0
    iget v5, p0, Lcom/example/Alpha;->value:I
    iput v5, p0, Lcom/example/Alpha;->value:I
    iget-object v7, p0, Lcom/example/Alpha;->other:Lcom/example/Alpha;
    sget v5, Lcom/example/Alpha;->COUNT:I
    sput v5, Lcom/example/Alpha;->COUNT:I
    invoke-virtual {v4, v0}, Ljava/lang/StringBuilder;->append(Ljava/lang/String;)Ljava/lang/StringBuilder;
    invoke-static/range {v0 .. v1}, Lcom/example/Alpha;->join(Ljava/lang/String;Ljava/lang/String;)Ljava/lang/String;
    if-eqz v5, :cond_0
    if-ne v5, v3, :cond_1
    goto :cond_0

    :cond_1
    goto/16 :cond_0

    :cond_0
    packed-switch v5, :pswitch_data
    sparse-switch v5, :sswitch_data
    goto/32 :end

    :end
    return-void

    :array_0
    .array-data 4
        0x1
        0x2
        0x3
    .end array-data

    :pswitch_data
    .packed-switch 0x0
        :cond_0
        :end
    .end packed-switch

    :sswitch_data
    .sparse-switch
        0x5 -> :cond_0
        0x9 -> :end
    .end sparse-switch
.end method

.method public static join(Ljava/lang/String;Ljava/lang/String;)Ljava/lang/String;
    .registers 4
    .param p0, "a"
        .annotation runtime Ljava/lang/Deprecated;
        .end annotation
    .end param

    :try_start
    invoke-virtual {p0, p1}, Ljava/lang/String;->concat(Ljava/lang/String;)Ljava/lang/String;
    move-result-object v0
    :try_end
    .catch Ljava/lang/RuntimeException; {:try_start .. :try_end} :handler
    .catchall {:try_start .. :try_end} :handler
    return-object v0

    :handler
    move-exception v0
    const/4 v0, 0x0
    return-object v0
.end method

.method public static bootstrap(Ljava/lang/invoke/MethodHandles$Lookup;Ljava/lang/String;Ljava/lang/invoke/MethodType;Ljava/lang/String;)Ljava/lang/invoke/CallSite;
    .registers 5
    const/4 v0, 0x0
    return-object v0
.end method

.method public static handles()V
    .registers 4
    const-method-handle v0, invoke-static@Lcom/example/Alpha;->join(Ljava/lang/String;Ljava/lang/String;)Ljava/lang/String;
    const-method-handle v1, static-get@Lcom/example/Alpha;->COUNT:I
    const-method-type v2, (I)V
    invoke-polymorphic {v0, v1}, Ljava/lang/invoke/MethodHandle;->invoke([Ljava/lang/Object;)Ljava/lang/Object;, (Ljava/lang/Object;)V
    invoke-custom {v1}, call_site_0("run", (I)V, "x")@Lcom/example/Alpha;->bootstrap(Ljava/lang/invoke/MethodHandles$Lookup;Ljava/lang/String;Ljava/lang/invoke/MethodType;Ljava/lang/String;)Ljava/lang/invoke/CallSite;
    invoke-custom/range {v1 .. v1}, call_site_0("run", (I)V, "x")@Lcom/example/Alpha;->bootstrap(Ljava/lang/invoke/MethodHandles$Lookup;Ljava/lang/String;Ljava/lang/invoke/MethodType;Ljava/lang/String;)Ljava/lang/invoke/CallSite;
    return-void
.end method
